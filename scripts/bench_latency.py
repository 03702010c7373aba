"""The bench's latency run alone, at a fixed rate, for A/B comparisons of latency.

`streamplane bench` runs its latency phase at half the rate its own pipeline run
reached, so two builds are measured at different rates and their latencies do not
compare. This script starts one embedded broker and runs only the latency phase at a
rate you pick, alternating variants in the same process (the same warm broker), each
with its own supervisor and worker environment:

    .venv/bin/python scripts/bench_latency.py --rate 38000 --reps 4 \\
        before:PYTHONPATH=/tmp/before/src,W_PYTHONPATH=/tmp/before/src after:

`before:` runs the supervisor and the worker from another checkout (a `git worktree`
with the generated `*_pb2.py` files copied in); `after:` runs this one. Keys written
`W_KEY` go to the worker as `KEY`, the others to the supervisor.
Prints one line per run: the variant, the load average, p50, p90 and p99 in ms, the
seconds the pipeline needed after the last input, the mean records per task, the
lost and duplicated records, and the median age of a record at each stage (where the
time went). Discard each variant's first run: the broker's JVM is still warming up.
"""

from __future__ import annotations

import argparse
import os

from streamplane.dev.bench.scratch import scratch_bench, variant

PARTITIONS = 6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, required=True, help="input events per second")
    parser.add_argument("--reps", type=int, default=3, help="runs of each variant")
    parser.add_argument("variants", nargs="+", type=variant, help="name:KEY=VALUE,...")
    args = parser.parse_args()
    with scratch_bench(1_000_000, PARTITIONS, "lat") as bench:
        for rep in range(args.reps):
            for name, supervisor_env, worker_env in args.variants:
                run = f"{name}{rep}"
                # The phase produces at half the rate it is given.
                result = bench.latency(
                    args.rate * 2,
                    name=run,
                    supervisor_env=supervisor_env or None,
                    worker_env=worker_env or None,
                )
                bench.verify_latency(result)
                f = result.figures()
                print(
                    name,
                    round(os.getloadavg()[0], 2),
                    f["latency_p50_ms"],
                    f["latency_p90_ms"],
                    f["latency_p99_ms"],
                    f["latency_drain_s"],
                    bench.records_per_task.get(run),
                    "lost",
                    result.tally.lost,
                    "dup",
                    result.tally.duplicates,
                    f["latency_stage_p50_ms"],
                    flush=True,
                )


if __name__ == "__main__":
    main()
