"""A throwaway bench for the A/B scripts: one embedded broker in a temporary folder.

`scripts/bench_pipeline.py` and `scripts/bench_latency.py` run one phase of the bench
many times on one warm broker. The folder goes with the broker's logs, hundreds of MB
at these rates. Both take variants as `name:KEY=VALUE,...` (see `variant`).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from streamplane.config import load_settings
from streamplane.dev.bench.limits import RSS_SAMPLE_S
from streamplane.dev.bench.phases import Bench
from streamplane.dev.bench.rss import RssSampler
from streamplane.dev.broker import EmbeddedBroker

# A variant's key written W_KEY goes to the worker as KEY; the others to the supervisor.
WORKER_PREFIX = "W_"

Variant = tuple[str, dict[str, str], dict[str, str]]


def variant(spec: str) -> Variant:
    """'name:K=V,W_K=V' as a name, the supervisor's and the worker's extra environment.

    `PYTHONPATH=<checkout>/src` runs the supervisor from another checkout, and
    `W_PYTHONPATH=<checkout>/src` the workers.
    """
    name, _, assignments = spec.partition(":")
    supervisor: dict[str, str] = {}
    worker: dict[str, str] = {}
    for pair in filter(None, assignments.split(",")):
        key, sep, value = pair.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"{pair!r} in {spec!r} is not KEY=VALUE")
        if key.startswith(WORKER_PREFIX):
            worker[key.removeprefix(WORKER_PREFIX)] = value
        else:
            supervisor[key] = value
    return name, supervisor, worker


@contextlib.contextmanager
def scratch_bench(count: int, partitions: int, prefix: str) -> Iterator[Bench]:
    """A Bench on a fresh embedded broker; both go, folder and all, on leaving."""
    with (
        tempfile.TemporaryDirectory(prefix=f"streamplane-{prefix}-") as scratch,
        EmbeddedBroker(Path(scratch) / "broker", port=0) as broker,
        RssSampler(RSS_SAMPLE_S) as rss,
    ):
        settings = load_settings(kafka_brokers=broker.bootstrap)
        run_prefix = f"{prefix}{int(time.time())}"
        bench = Bench(settings, count, partitions, Path(scratch), rss, run_prefix)
        bench.broker_pid = broker.pid
        yield bench
