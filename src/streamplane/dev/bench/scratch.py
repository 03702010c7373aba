"""A throwaway bench for the A/B scripts: one embedded broker in a temporary folder.

`scripts/bench_pipeline.py` and `scripts/bench_latency.py` run one phase of the bench
many times on one warm broker. The folder goes with the broker's logs, hundreds of MB
at these rates.
"""

from __future__ import annotations

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
