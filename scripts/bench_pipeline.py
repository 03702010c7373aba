"""The bench's one-worker pipeline run alone, for A/B comparisons of settings or builds.

`streamplane bench` runs every phase once, so two builds or two settings are compared
across runs minutes apart, on a machine whose speed drifts. This script starts one
embedded broker, fills one input topic, and runs only the one-worker pipeline over it,
alternating variants (each a fresh group and output topic), so that each pair of runs
shares the broker and the moment:

    .venv/bin/python scripts/bench_pipeline.py --count 400000 --reps 2 \\
        alo: eos:PROCESSING_GUARANTEE=exactly_once \\
        eos2k:PROCESSING_GUARANTEE=exactly_once,BATCH_MAX_RECORDS=2000

A variant is `name:KEY=VALUE,...`: the supervisor's extra environment. A key written
`W_KEY` goes to the worker as `KEY` instead, and `PYTHONPATH=<checkout>/src` runs a
supervisor from another checkout (its workers too when given as `W_PYTHONPATH`). Prints
one line per run: the variant, the load average, records per second, CPU microseconds
per record by role, the mean records per task, and the lost and duplicated records
(read back under read_committed). Discard each variant's first run: the broker's JVM is
still warming up.
"""

from __future__ import annotations

import argparse
import os

from streamplane.dev.bench.scratch import scratch_bench, variant

PARTITIONS = 6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=400_000, help="input events")
    parser.add_argument("--reps", type=int, default=2, help="runs of each variant")
    parser.add_argument("variants", nargs="+", type=variant, help="name:KEY=VALUE,...")
    args = parser.parse_args()
    with scratch_bench(args.count, PARTITIONS, "ab") as bench:
        source = f"{bench.prefix}.in"
        ends = bench.fill(source)
        for rep in range(args.reps):
            for name, supervisor_env, worker_env in args.variants:
                run = f"{name}{rep}"
                route = bench.route(run, source)
                result = bench.pipeline(route, ends, 1, None, supervisor_env, worker_env)
                tally = bench.verify(route, ends)
                cpu = {role: round(us or 0.0, 2) for role, us in result.cpu_us.items()}
                print(
                    name,
                    round(os.getloadavg()[0], 2),
                    round(result.rate or 0.0),
                    cpu,
                    bench.records_per_task.get(run),
                    "lost",
                    tally.lost,
                    "dup",
                    tally.duplicates,
                    flush=True,
                )


if __name__ == "__main__":
    main()
