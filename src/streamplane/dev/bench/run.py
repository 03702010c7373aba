"""The entry of `streamplane bench`: reach or start Kafka, run the phases, print the line."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from streamplane import __version__
from streamplane.config import Settings, load_settings
from streamplane.dev.bench.exceptions import BenchError
from streamplane.dev.bench.limits import REACH_TIMEOUT_S, RSS_SAMPLE_S
from streamplane.dev.bench.phases import Bench
from streamplane.dev.bench.rss import RssSampler
from streamplane.dev.broker import EmbeddedBroker, kafka_version
from streamplane.exceptions import StreamplaneError
from streamplane.platform.kafka.admin import describe_cluster
from streamplane.platform.kafka.config import versions
from streamplane.platform.kafka.exceptions import KafkaPlatformError

__all__ = ["run_bench"]


def run_bench(
    values: dict[str, Any],
    count: int,
    partitions: int,
    data_dir: Path | None,
    transport: str = "grpc",
    guarantee: str = "at_least_once",
) -> int:
    """Run every phase and print one JSON line; the body of `streamplane bench`.

    Args:
        values: The Kafka settings flags (`kafka_brokers` None: start an embedded broker).
        count: Events in the input topic.
        partitions: Partitions of the input topic.
        data_dir: Folder for the embedded broker (default: a temp dir, removed after).
        transport: "mesh" adds the MeshData pipeline run and its ratio to the gRPC one.
        guarantee: "exactly_once" adds the transactional pipeline and latency runs.

    Returns:
        0 on success; 1 when the bench failed or the pipeline lost records; 130 when
        interrupted. Every subprocess is stopped before returning.
    """
    workdir = Path(tempfile.mkdtemp(prefix="streamplane-bench-"))
    logs = workdir / "logs"
    keep_logs = False
    try:
        with _sigterm_as_interrupt():
            report = _bench(values, count, partitions, data_dir, workdir, transport, guarantee)
        print(json.dumps(report), flush=True)  # the one line stdout carries
        if report["lost"]:
            keep_logs = True
            _fail(f"the pipeline lost {report['lost']} records; logs in {logs}")
            return 1
        return 0
    except KeyboardInterrupt:
        _fail("interrupted; every process it started was stopped")
        return 130
    except (StreamplaneError, OSError) as exc:
        keep_logs = logs.exists()
        _fail(f"{exc}\n  logs of the supervisor and workers: {logs}" if keep_logs else str(exc))
        return 1
    finally:
        _remove_workdir(workdir, keep_logs)


def _bench(
    values: dict[str, Any],
    count: int,
    partitions: int,
    data_dir: Path | None,
    workdir: Path,
    transport: str = "grpc",
    guarantee: str = "at_least_once",
) -> dict[str, Any]:
    """Start or reach Kafka, run the phases, and return the report."""
    with contextlib.ExitStack() as stack:
        brokers = values.get("kafka_brokers")
        embedded = brokers is None
        if embedded:
            broker = EmbeddedBroker(data_dir or workdir / "broker", port=0)
            stack.callback(broker.stop)
            brokers = broker.start()
        settings = load_settings(**{**values, "kafka_brokers": brokers})
        _check_reachable(settings)
        rss = stack.enter_context(RssSampler(RSS_SAMPLE_S))
        bench = Bench(
            settings, count, partitions, workdir, rss, _run_prefix(), transport, guarantee
        )
        bench.broker_pid = broker.pid if embedded else None
        if data_dir is not None or not embedded:
            # A temp-dir broker disappears with its topics; anything else keeps them.
            stack.callback(bench.delete_topics)
        report = _header(count, partitions, embedded)
        report.update(bench.run())
        return report


def _check_reachable(settings: Settings) -> None:
    """Fail in seconds, with one clear line, when Kafka does not answer."""
    # Critical-only logging: otherwise librdkafka prints a line per connection attempt,
    # and the reason is in the exception anyway.
    quiet: dict[str, str | int] = {**settings.kafka.as_librdkafka_dict(), "log_level": 2}
    try:
        describe_cluster(quiet, timeout=REACH_TIMEOUT_S)
    except KafkaPlatformError as exc:
        raise BenchError(
            f"Kafka at {settings.kafka.kafka_brokers} did not answer within "
            f"{REACH_TIMEOUT_S:.0f} s ({exc})"
        ) from exc


def _header(count: int, partitions: int, embedded: bool) -> dict[str, Any]:
    """What the figures depend on: sizes, machine, load and versions."""
    clients = versions()
    return {
        "count": count,
        "partitions": partitions,
        "cpu_count": os.cpu_count(),
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
        "broker": "embedded" if embedded else "external",
        "settings": "defaults",
        "versions": {
            "streamplane": __version__,
            "python": platform.python_version(),
            "kafka": kafka_version() if embedded else "external",
            "confluent-kafka": clients["confluent-kafka"],
            **{name: _version(name) for name in ("polars", "grpcio")},
            "librdkafka": clients["librdkafka"],
        },
    }


def _version(distribution: str) -> str:
    """The installed version of a distribution, or 'missing'."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "missing"


def _run_prefix() -> str:
    """A prefix for this run's topics and groups, unique across runs on one cluster."""
    return f"streamplane-bench-{uuid.uuid4().hex[:10]}"


def _fail(message: str) -> None:
    print(f"streamplane bench: {message}", file=sys.stderr, flush=True)


def _remove_workdir(workdir: Path, keep_logs: bool) -> None:
    """Remove the temp dir; a failed run keeps its logs (and says where, above)."""
    if not keep_logs:
        shutil.rmtree(workdir, ignore_errors=True)
        return
    for child in workdir.iterdir():
        if child.name != "logs":
            shutil.rmtree(child, ignore_errors=True)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Make SIGTERM unwind like Ctrl-C, so every `finally` stops what it started."""

    def interrupt(signum: int, frame: FrameType | None) -> NoReturn:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals to the caller
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
