"""`streamplane bench`: a raw passthrough against the pipeline, in one run, as one JSON line.

Phases, each on fresh topics and consumer groups so that no phase sees another's records
or offsets:

1. fill: COUNT demo events (~200 bytes) into a fresh input topic;
2. passthrough: one process consumes, produces, flushes and commits with confluent-kafka,
   the baseline a good engineer would write by hand, with the same client settings as
   the pipeline (acks=all, idempotence, lz4; `fetch.queue.backoff.ms=10`);
3. pipeline: a real `streamplane supervisor` and one `streamplane worker` subprocess;
4. pipeline2: the same with two workers;
   (with `--transport mesh`) mesh_pipeline: one supervisor and one worker again, with
   tasks published through MeshData (supervisor -> hub -> worker node -> worker) and
   acks on gRPC, against hub and worker `streamplane mesh-node` processes;
5. latency: one supervisor and one worker while fresh events arrive at half the rate
   measured in 3; latency is the output record's Kafka timestamp (CreateTime, set at
   the worker's produce) minus its `src_timestamp_ms` (the input record's timestamp);
6. verify: every output and dead-letter record of 3-5 is matched to its input by its
   sp-src-* headers: inputs never seen are lost, inputs seen twice are duplicates.

A pipeline run's throughput is the records handled from the moment the supervisor is
ready and every worker holds credit until the group's committed offsets reach the end
offsets. Supervisor and workers run with default settings except addresses, topics and
group, so the figures are what users get. Progress goes to stderr, the JSON line to
stdout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, NoReturn

import orjson
import psutil
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
    libversion,
)
from confluent_kafka.admin import AdminClient
from pydantic import SecretStr
from tqdm import tqdm

from streamplane import __version__
from streamplane.config import KafkaSettings, Settings, load_settings, variables
from streamplane.exceptions import StreamplaneError, TransientError
from streamplane.platform import headers as h
from streamplane.platform.demo_events import events, produce_events
from streamplane.platform.kafka.admin import committed_offsets, end_offsets, ensure_topics
from streamplane.platform.kafka.broker import EmbeddedBroker, kafka_version
from streamplane.platform.kafka.clients import consumer_config, producer_config

__all__ = ["BenchError", "Tally", "percentile", "run_bench"]

logger = logging.getLogger(__name__)

# Demo events as `streamplane produce` writes them by default.
TENANTS = 3
USERS = 1000
SEED = 7

# Records per consume() in the passthrough: one call hands over many records at the cost
# of one, and one flush+commit per batch keeps the per-record overhead down.
PASSTHROUGH_BATCH = 10_000
# How often committed offsets are polled (the issue asks ~100 ms) and RSS is sampled.
POLL_S = 0.1
RSS_SAMPLE_S = 0.2
# Bounds that turn a hang into an error: process start (polars and grpc imports on a
# loaded 2-core machine take seconds), a run that stops moving, a graceful stop.
READY_TIMEOUT_S = 120.0
STALL_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0
REACH_TIMEOUT_S = 15.0
# Deleting the bench's topics at the end is a courtesy; it must not hold the exit long.
DELETE_TIMEOUT_S = 15.0
# The latency run produces for at most this long (and at most COUNT events).
LATENCY_SECONDS = 10.0

_READY_LINE = re.compile(rb"supervisor ready grpc=(\d+) http=(\d+)")
# Children get these variables only from us: with the user's environment (or the .env
# file in the working directory) they would not run with the defaults users get.
_SETTING_VARIABLES = frozenset(variables())
_KAFKA_FIELDS = tuple(name for name in KafkaSettings.model_fields if name.startswith("kafka_"))


class BenchError(StreamplaneError):
    """The bench could not finish: a process died, a run stalled, data went missing."""


# ------------------------------------------------------------------------------ entry


def run_bench(
    values: dict[str, Any],
    count: int,
    partitions: int,
    data_dir: Path | None,
    transport: str = "grpc",
) -> int:
    """Run every phase and print one JSON line; the body of `streamplane bench`.

    Args:
        values: The Kafka settings flags (`kafka_brokers` None: start an embedded broker).
        count: Events in the input topic.
        partitions: Partitions of the input topic.
        data_dir: Folder for the embedded broker (default: a temp dir, removed after).
        transport: "mesh" adds the MeshData pipeline run and its ratio to the gRPC one.

    Returns:
        0 on success; 1 when the bench failed or the pipeline lost records; 130 when
        interrupted. Every subprocess is stopped before returning.
    """
    workdir = Path(tempfile.mkdtemp(prefix="streamplane-bench-"))
    logs = workdir / "logs"
    keep_logs = False
    try:
        with _sigterm_as_interrupt():
            report = _bench(values, count, partitions, data_dir, workdir, transport)
        print(json.dumps(report), flush=True)  # the one line stdout carries
        if report["lost"]:
            keep_logs = True
            _fail(f"the pipeline lost {report['lost']} records; logs in {logs}")
            return 1
        return 0
    except KeyboardInterrupt:
        _fail("interrupted; every process it started was stopped")
        return 130
    except (StreamplaneError, KafkaException, OSError) as exc:
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
        bench = Bench(settings, count, partitions, workdir, rss, _run_prefix(), transport)
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
    probe = AdminClient({**settings.kafka.as_librdkafka_dict(), "log_level": 2})
    try:
        probe.list_topics(timeout=REACH_TIMEOUT_S)
    except KafkaException as exc:
        raise BenchError(
            f"Kafka at {settings.kafka.kafka_brokers} did not answer within "
            f"{REACH_TIMEOUT_S:.0f} s ({exc.args[0] if exc.args else exc})"
        ) from exc


def _header(count: int, partitions: int, embedded: bool) -> dict[str, Any]:
    """What the figures depend on: sizes, machine, load and versions."""
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
            **{name: _version(name) for name in ("confluent-kafka", "polars", "grpcio")},
            "librdkafka": str(libversion()[0]),
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


# ------------------------------------------------------------------------- the phases


@dataclass(frozen=True, slots=True)
class Route:
    """Where one run reads and writes."""

    input: str
    output: str
    dlq: str
    group: str

    @property
    def name(self) -> str:
        """The run's short name: the last part of the group (`pipeline1`, `latency`)."""
        return self.group.rsplit(".", 1)[-1]


@dataclass(frozen=True, slots=True)
class RunResult:
    """Records handled by one run while timed, and how long that took."""

    records: int
    seconds: float

    @property
    def rate(self) -> float | None:
        """Records per second; None when nothing was left to time."""
        return self.records / self.seconds if self.records > 0 and self.seconds > 0 else None


@dataclass(slots=True)
class Tally:
    """How often each input record (partition, offset) shows up in a run's outputs."""

    topic: str
    seen: dict[int, bytearray]
    records: int = 0
    unexpected: int = 0

    @classmethod
    def expecting(cls, topic: str, ends: Mapping[int, int]) -> Tally:
        """A tally for a fresh topic whose partitions hold offsets 0 .. end-1."""
        return cls(topic, {partition: bytearray(end) for partition, end in ends.items()})

    def visit(self, message: Any) -> None:
        """Count the input record that `message` (an output or DLQ record) came from."""
        found = dict(message.headers() or ())
        try:
            topic = found[h.SRC_TOPIC].decode()
            seen = self.seen[int(found[h.SRC_PARTITION])]
            offset = int(found[h.SRC_OFFSET])
        except (KeyError, ValueError, AttributeError):
            self.unexpected += 1
            return
        if topic != self.topic or not 0 <= offset < len(seen):
            self.unexpected += 1
            return
        self.records += 1
        # A byte per record keeps 1M inputs in 1 MB; it saturates, `records` does not.
        seen[offset] = min(seen[offset] + 1, 255)

    @property
    def lost(self) -> int:
        """Input records no output or dead-letter record came from."""
        return sum(counts.count(0) for counts in self.seen.values())

    @property
    def duplicates(self) -> int:
        """Output and dead-letter records beyond the first for their input."""
        inputs = sum(len(counts) for counts in self.seen.values())
        return self.records - (inputs - self.lost)


@dataclass(slots=True)
class Bench:
    """One bench run: its Kafka settings, sizes, names and collected figures."""

    settings: Settings
    count: int
    partitions: int
    workdir: Path
    rss: RssSampler
    prefix: str
    transport: str = "grpc"
    topics: list[str] = field(default_factory=list)
    unclean_exits: int = 0
    # Mean records per task in each pipeline run: small tasks mean per-task costs
    # (a gRPC message, a DataFrame, an ack round trip) weigh on every record.
    records_per_task: dict[str, float | None] = field(default_factory=dict)

    @property
    def kafka(self) -> dict[str, str]:
        """The librdkafka settings every client of the bench shares."""
        return self.settings.kafka.as_librdkafka_dict()

    @property
    def monitor(self) -> dict[str, str | int]:
        """Settings for the admin helpers polled every 100 ms.

        They build a client per call, and librdkafka logs an info line
        ("Purging unserved events") as each one goes: notice level and up keeps
        those off the progress bars without hiding warnings.
        """
        return {**self.kafka, "log_level": 5}

    def route(self, name: str, input_topic: str) -> Route:
        """Fresh output, dead-letter and group names for one run (topics not created)."""
        return Route(
            input=input_topic,
            output=f"{self.prefix}.{name}.out",
            dlq=f"{self.prefix}.{name}.dlq",
            group=f"{self.prefix}.{name}",
        )

    def run(self) -> dict[str, Any]:
        """Every phase in order; returns the figures for the report."""
        source = f"{self.prefix}.in"
        ends = self.fill(source)
        passthrough = self.passthrough(source, ends)
        one = self.route("pipeline1", source)
        pipeline = self.pipeline(one, ends, workers=1)
        two = self.route("pipeline2", source)
        pipeline2 = self.pipeline(two, ends, workers=2)
        mesh_figures: dict[str, Any] = {}
        mesh_tallies: list[Tally] = []
        if self.transport == "mesh":
            meshed = self.route("mesh1", source)
            mesh = self.pipeline(meshed, ends, workers=1, mesh=MeshLayout.create(self.workdir))
            mesh_tallies.append(self.verify(meshed, ends))
            mesh_figures = {
                **_rate("mesh_pipeline", mesh),
                "ratio_mesh_pipeline_to_pipeline": _ratio(mesh.rate, pipeline.rate),
                "mesh_node_peak_rss_mb": self.rss.peak_mb("mesh-node"),
            }
        latency = self.latency(pipeline.rate)
        tallies = [self.verify(one, ends), self.verify(two, ends), self.verify_latency(latency)]
        tallies += mesh_tallies
        return {
            "transport": self.transport,
            **_rate("passthrough", passthrough),
            **_rate("pipeline", pipeline),
            **_rate("pipeline2", pipeline2),
            "ratio_pipeline_to_passthrough": _ratio(pipeline.rate, passthrough.rate),
            "ratio_pipeline2_to_passthrough": _ratio(pipeline2.rate, passthrough.rate),
            **mesh_figures,
            **latency.figures(),
            "supervisor_peak_rss_mb": self.rss.peak_mb("supervisor"),
            "worker_peak_rss_mb": self.rss.peak_mb("worker"),
            "lost": sum(t.lost for t in tallies),
            "duplicates": sum(t.duplicates for t in tallies),
            "unexpected_records": sum(t.unexpected for t in tallies),
            "unclean_exits": self.unclean_exits,
            "records_per_task": self.records_per_task,
        }

    # -- 1. fill ----------------------------------------------------------------------
    def fill(self, topic: str) -> dict[int, int]:
        """Write COUNT demo events to a fresh topic; returns its end offsets."""
        self.topics.append(topic)
        ensure_topics(self.kafka, {topic: self.partitions})
        # `streamplane produce`'s producer: the input looks as the demo makes it.
        producer = Producer({**self.kafka, "linger.ms": 20, "compression.type": "lz4"})
        with _bar("fill", self.count) as bar:
            stream = events(self.count, TENANTS, USERS, 0.0, SEED)
            produce_events(producer, topic, stream, None, on_progress=_advance(bar))
            bar.update(self.count - bar.n)
        ends = end_offsets(self.kafka, topic)
        if sum(ends.values()) != self.count:
            raise BenchError(f"wrote {self.count} events but {topic} holds {sum(ends.values())}")
        return ends

    # -- 2. passthrough ---------------------------------------------------------------
    def passthrough(self, source: str, ends: dict[int, int]) -> RunResult:
        """Consume, produce, flush, commit in one process: the raw baseline."""
        route = self.route("passthrough", source)
        self.topics.append(route.output)
        ensure_topics(self.kafka, {route.output: self.partitions})
        failures: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                failures.append(str(err))

        # Correct code checks delivery before it commits; one report callback for the
        # whole producer is the cheapest way to see failures.
        conf = producer_config(self.settings, f"{self.prefix}-passthrough")
        producer = Producer({**conf, "on_delivery": delivered})
        consumer = Consumer(consumer_config(self.settings, route.group))
        try:
            consumer.assign([TopicPartition(source, p, OFFSET_BEGINNING) for p in ends])
            with _bar("passthrough", self.count) as bar:
                started = time.monotonic()
                _copy_all(consumer, producer, route, ends, failures, bar)
                seconds = time.monotonic() - started
        finally:
            consumer.close()
        return RunResult(self.count, seconds)

    # -- 3 and 4. pipeline ------------------------------------------------------------
    def pipeline(
        self, route: Route, ends: dict[int, int], workers: int, mesh: MeshLayout | None = None
    ) -> RunResult:
        """Run a supervisor and `workers` workers over the filled topic until committed.

        With `mesh`, its nodes start first and tasks go through them (MeshData).
        """
        with self.fleet(route) as fleet:
            if mesh is None:
                fleet.start(workers)
            else:
                fleet.start_mesh(mesh)
                fleet.start(workers, mesh.supervisor_env(), mesh.worker_env())
            started, done_before = fleet.wait_ready(workers)
            label = f"{'mesh ' if mesh else ''}pipeline x{workers}"
            with _bar(label, self.count) as bar:
                finished = self.wait_committed(route, ends, fleet, bar)
            self.note_task_size(route, fleet)
        # Records the first worker finished while a second was still starting are not
        # counted: the clock only starts once every process is ready.
        timed = self.count - done_before
        if timed < self.count / 2:
            logger.warning(
                "most records were handled before every worker was ready; "
                "a larger --count gives a steadier figure",
                extra={"workers": workers, "timed": timed, "count": self.count},
            )
        return RunResult(timed, finished - started)

    def fleet(self, route: Route) -> Fleet:
        """A fleet for one run; its exit stops every process and counts unclean exits."""
        self.topics += [route.output, route.dlq]  # the supervisor creates both
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        return Fleet(route, _child_env(self.settings), logs, self.rss, self._count_unclean)

    def _count_unclean(self, unclean: int) -> None:
        self.unclean_exits += unclean

    def wait_committed(
        self, route: Route, ends: Mapping[int, int], fleet: Fleet, bar: tqdm[NoReturn]
    ) -> float:
        """Poll the group's committed offsets until they reach `ends`; return when.

        The time taken is the one after the answer came back: the commit landed before
        it, so the throughput is never overstated.
        """
        progress, moved = -1, time.monotonic()
        while True:
            asked = time.monotonic()
            try:
                committed = committed_offsets(self.monitor, route.group, route.input)
            except TransientError:
                committed = None  # the coordinator is busy: ask again next round
            now = time.monotonic()
            if committed is not None:
                done = sum(min(committed.get(p, 0), end) for p, end in ends.items())
                bar.update(done - bar.n)
                if done >= sum(ends.values()):
                    return now
                if done != progress:
                    progress, moved = done, now
            if now - moved > STALL_TIMEOUT_S:
                raise BenchError(
                    f"group {route.group} committed nothing new for {STALL_TIMEOUT_S:.0f} s "
                    f"({max(progress, 0)} of {sum(ends.values())} records)"
                )
            fleet.check_alive()
            time.sleep(max(POLL_S - (time.monotonic() - asked), 0.0))

    # -- 5. latency -------------------------------------------------------------------
    def latency(self, max_rate: float | None) -> LatencyResult:
        """Produce at half `max_rate` into a fresh topic through one supervisor and worker."""
        if not max_rate:
            raise BenchError("the one-worker pipeline run measured no throughput")
        rate = max_rate / 2
        source = f"{self.prefix}.latency.in"
        self.topics.append(source)
        ensure_topics(self.kafka, {source: self.partitions})
        route = self.route("latency", source)
        count = max(1, min(self.count, int(rate * LATENCY_SECONDS)))
        # Made before the clock starts, so the pacing loop only produces: generating
        # ~25 us of JSON per event here would take CPU from the pipeline under test.
        batch = list(events(count, TENANTS, USERS, 0.0, SEED + 1))
        with self.fleet(route) as fleet:
            fleet.start(1)
            fleet.wait_ready(1)
            # librdkafka's default linger (5 ms): the input's timestamp is taken at
            # produce(), so a longer linger would count as pipeline latency.
            producer = Producer({**self.kafka, "linger.ms": 5})
            with _bar("latency", count) as bar:
                produce_events(producer, source, iter(batch), rate, on_progress=_advance(bar))
                bar.update(count - bar.n)
            produced = time.monotonic()
            ends = end_offsets(self.kafka, source)
            with _bar("latency drain", count) as bar:
                drained = self.wait_committed(route, ends, fleet, bar)
            self.note_task_size(route, fleet)
        # Seconds the pipeline needed after the last event was written; well above the
        # commit interval means it did not keep up with the rate.
        drain_s = drained - produced
        return LatencyResult(rate, count, drain_s, route, Tally.expecting(source, ends))

    def note_task_size(self, route: Route, fleet: Fleet) -> None:
        """Record the run's mean records per task, from the supervisor's status."""
        try:
            counters = fleet.status()["events"]
            dispatched = int(counters["dispatched"])
            size = round(int(counters["records_done"]) / dispatched, 1) if dispatched else None
        except (OSError, KeyError, ValueError):
            size = None  # a diagnostic only: never fail the run for it
        self.records_per_task[route.name] = size

    # -- 6. verify --------------------------------------------------------------------
    def verify(self, route: Route, ends: Mapping[int, int]) -> Tally:
        """Match a run's output and dead-letter records to the input records."""
        tally = Tally.expecting(route.input, ends)
        self.read(route.output, tally.visit, f"verify {route.name}")
        self.read(route.dlq, tally.visit, f"verify {route.name}")
        return tally

    def verify_latency(self, result: LatencyResult) -> Tally:
        """Match the latency run's records to its input and take their latencies."""
        self.read(result.route.output, result.visit, "verify latency")
        self.read(result.route.dlq, result.tally.visit, "verify latency")
        return result.tally

    def read(self, topic: str, visit: Callable[[Any], None], label: str) -> None:
        """Call `visit` on each record of `topic` up to its end offsets now."""
        ends = {p: end for p, end in end_offsets(self.kafka, topic).items() if end > 0}
        if not ends:
            return
        consumer = Consumer(
            {
                **self.kafka,
                # Assigned partitions, no join and no commit; the id is only required.
                "group.id": f"{self.prefix}.reader",
                "enable.auto.commit": False,
                "fetch.queue.backoff.ms": 10,
            }
        )
        try:
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
            with _bar(label, sum(ends.values())) as bar:
                _read_until(consumer, ends, visit, bar)
        finally:
            consumer.close()

    def delete_topics(self) -> None:
        """Delete this run's topics (best effort: a failure is logged, not raised)."""
        if not self.topics:
            return
        # The client must outlive its futures: a collected client fails them all.
        admin = AdminClient(dict(self.kafka))
        deadline = time.monotonic() + DELETE_TIMEOUT_S
        futures = admin.delete_topics(self.topics, operation_timeout=DELETE_TIMEOUT_S)
        for topic, future in futures.items():
            try:
                future.result(timeout=max(deadline - time.monotonic(), 0.1))
            except KafkaException as exc:
                if exc.args and exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    continue  # never created: the run failed before the supervisor started
                logger.warning(
                    "could not delete a bench topic", extra={"topic": topic, "error": str(exc)}
                )
            except Exception as exc:  # cleanup must not mask the run's result
                logger.warning(
                    "could not delete a bench topic", extra={"topic": topic, "error": repr(exc)}
                )


def _rate(name: str, result: RunResult) -> dict[str, float | int | None]:
    rate = result.rate
    return {
        f"{name}_msgs_per_s": round(rate, 1) if rate is not None else None,
        f"{name}_s": round(result.seconds, 3),
        f"{name}_records": result.records,
    }


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 4)


# ------------------------------------------------------------------ passthrough loop


def _copy_all(
    consumer: Any,
    producer: Any,
    route: Route,
    ends: Mapping[int, int],
    failures: list[str],
    bar: tqdm[NoReturn],
) -> None:
    """Copy every record up to `ends`: consume a batch, produce, flush, commit."""
    remaining = {p for p, end in ends.items() if end > 0}
    positions: dict[int, int] = {}
    idle_since = time.monotonic()
    while remaining:
        messages = consumer.consume(num_messages=PASSTHROUGH_BATCH, timeout=0.5)
        if not messages:
            if time.monotonic() - idle_since > STALL_TIMEOUT_S:
                raise BenchError(f"passthrough read nothing for {STALL_TIMEOUT_S:.0f} s")
            continue
        for message in messages:
            error = message.error()
            if error is not None:
                raise KafkaException(error)
            producer.produce(route.output, message.value(), message.key())
            positions[message.partition()] = message.offset()
        if producer.flush(60) or failures:
            raise BenchError(f"passthrough writes failed: {failures[:1] or 'flush timed out'}")
        consumer.commit(
            offsets=[TopicPartition(route.input, p, o + 1) for p, o in positions.items()],
            asynchronous=False,
        )
        bar.update(len(messages))
        idle_since = time.monotonic()
        remaining = {p for p in remaining if positions.get(p, -1) + 1 < ends[p]}


def _read_until(
    consumer: Any, ends: Mapping[int, int], visit: Callable[[Any], None], bar: tqdm[NoReturn]
) -> None:
    """Consume assigned partitions until each reaches its end offset."""
    remaining = dict(ends)
    idle_since = time.monotonic()
    while remaining:
        messages = consumer.consume(num_messages=10_000, timeout=0.5)
        if not messages and time.monotonic() - idle_since > STALL_TIMEOUT_S:
            raise BenchError(f"reading back stalled with partitions {sorted(remaining)} unread")
        for message in messages:
            error = message.error()
            if error is not None:
                raise KafkaException(error)
            visit(message)
            partition = message.partition()
            if message.offset() + 1 >= remaining.get(partition, math.inf):
                del remaining[partition]
        if messages:
            bar.update(len(messages))
            idle_since = time.monotonic()


# -------------------------------------------------------------------------- latency


@dataclass(slots=True)
class LatencyResult:
    """Latencies of the records of the latency run, and its tally."""

    rate: float
    count: int
    drain_s: float
    route: Route
    tally: Tally
    latencies_ms: list[int] = field(default_factory=list)

    def visit(self, message: Any) -> None:
        """Take one output record's latency and count it in the tally."""
        self.tally.visit(message)
        _, written_ms = message.timestamp()
        self.latencies_ms.append(written_ms - orjson.loads(message.value())["src_timestamp_ms"])

    def figures(self) -> dict[str, float | int | None]:
        """The latency figures of the report."""
        ordered = sorted(self.latencies_ms)
        return {
            "latency_rate_msgs_per_s": round(self.rate, 1),
            "latency_records": self.count,
            "latency_drain_s": round(self.drain_s, 3),
            "latency_p50_ms": percentile(ordered, 50),
            "latency_p90_ms": percentile(ordered, 90),
            "latency_p99_ms": percentile(ordered, 99),
            "latency_max_ms": ordered[-1] if ordered else None,
        }


def percentile(ordered: list[int], q: float) -> int | None:
    """The nearest-rank percentile of sorted values (None when there are none)."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(math.ceil(q / 100 * len(ordered)) - 1, 0))]


# ------------------------------------------------------------------------ processes


@dataclass(frozen=True, slots=True)
class Child:
    """One `streamplane` subprocess and the file its output goes to."""

    role: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        """The last lines of its output."""
        text = self.log.read_bytes()[-32_768:].decode("utf-8", "replace")
        return "\n".join(text.rstrip().splitlines()[-lines:])


class Fleet:
    """One supervisor and its workers for one run; leaving the `with` stops them all."""

    def __init__(
        self,
        route: Route,
        env: dict[str, str],
        logs: Path,
        rss: RssSampler,
        on_stopped: Callable[[int], None],
    ) -> None:
        self._route = route
        self._env = env
        self._logs = logs
        self._rss = rss
        self._on_stopped = on_stopped
        self._children: list[Child] = []
        self._http_port = 0

    def __enter__(self) -> Fleet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._on_stopped(self.stop())

    def start(
        self,
        workers: int,
        supervisor_env: Mapping[str, str] | None = None,
        worker_env: Mapping[str, str] | None = None,
    ) -> None:
        """Start the supervisor, wait for its ports, then start the workers."""
        r = self._route
        supervisor = self._spawn(
            "supervisor",
            **(supervisor_env or {}),
            INPUT_TOPIC=r.input,
            OUTPUT_TOPIC=r.output,
            DLQ_TOPIC=r.dlq,
            CONSUMER_GROUP=r.group,
            SUPERVISOR_LISTEN="127.0.0.1:0",
            SUPERVISOR_HTTP_LISTEN="127.0.0.1:0",
        )
        grpc_port, self._http_port = self._wait_ports(supervisor)
        for _ in range(workers):
            self._spawn(
                "worker",
                **(worker_env or {}),
                OUTPUT_TOPIC=r.output,
                DLQ_TOPIC=r.dlq,
                SUPERVISOR_GRPC_ADDR=f"127.0.0.1:{grpc_port}",
            )

    def start_mesh(self, mesh: MeshLayout) -> None:
        """Start every mesh node of `mesh` and wait until each serves."""
        for node_id, port in mesh.ports.items():
            child = self._spawn(
                "mesh-node",
                MESH_NODE_ID=node_id,
                MESH_NODE_LISTEN=f"127.0.0.1:{port}",
                MESH_SERVICES_FILE=str(mesh.manifest),
            )
            ready = f"mesh node {node_id} ready".encode()
            deadline = time.monotonic() + READY_TIMEOUT_S
            while ready not in child.log.read_bytes():
                self.check_alive()
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"mesh node {node_id} did not start in {READY_TIMEOUT_S:.0f} s"
                    )
                time.sleep(0.05)

    def wait_ready(self, workers: int) -> tuple[float, int]:
        """Wait until the supervisor holds partitions and `workers` workers hold credit.

        Returns the moment that happened and the records already handled by then.
        """
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            self.check_alive()
            ready = self._ready_workers()
            if ready is not None and len(ready) >= workers:
                return time.monotonic(), sum(int(w["records_done"]) for w in ready)
            if time.monotonic() > deadline:
                raise BenchError(
                    f"the supervisor and {workers} worker(s) were not ready within "
                    f"{READY_TIMEOUT_S:.0f} s"
                )
            time.sleep(0.05)

    def check_alive(self) -> None:
        """Raise BenchError, with its output's tail, if a process has exited."""
        for child in self._children:
            code = child.process.poll()
            if code is not None:
                raise BenchError(
                    f"{child.role} (pid {child.process.pid}) exited with {code}; "
                    f"tail of {child.log}:\n{child.tail()}"
                )

    def stop(self) -> int:
        """SIGTERM every process (they drain), then SIGKILL stragglers.

        Returns how many did not exit 0 on their own.
        """
        try:
            return self._terminate()
        except BaseException:
            # A second Ctrl-C while draining: no more waiting, but nothing survives us.
            for child in self._children:
                with contextlib.suppress(OSError):
                    child.process.kill()
            raise
        finally:
            for child in self._children:
                self._rss.unwatch(child.process.pid)

    def _terminate(self) -> int:
        for child in self._children:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        unclean = 0
        for child in self._children:
            try:
                code = child.process.wait(max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                child.process.kill()
                code = child.process.wait()
            if code != 0:
                unclean += 1
                logger.warning(
                    "a bench process did not stop cleanly",
                    extra={"role": child.role, "code": code, "log": str(child.log)},
                )
        return unclean

    def _spawn(self, role: str, **variables: str) -> Child:
        index = len(self._children)
        log = self._logs / f"{self._route.name}-{index}-{role}.log"
        with log.open("wb") as handle:
            process = subprocess.Popen(
                [sys.executable, "-m", "streamplane.cli", role],
                env={**self._env, **variables},
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                # No .env file here: the children run with the defaults.
                cwd=self._logs,
                # Ctrl-C reaches the bench only; it stops the children in order.
                start_new_session=True,
            )
        child = Child(role, process, log)
        self._children.append(child)
        self._rss.watch(role, process.pid)
        return child

    def _wait_ports(self, supervisor: Child) -> tuple[int, int]:
        """Read the supervisor's gRPC and HTTP ports from its ready line."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            match = _READY_LINE.search(supervisor.log.read_bytes())
            if match:
                return int(match.group(1)), int(match.group(2))
            self.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"the supervisor did not start within {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.05)

    def status(self) -> dict[str, Any]:
        """The supervisor's /v1/status document."""
        status: dict[str, Any] = _get_json(f"http://127.0.0.1:{self._http_port}/v1/status")
        return status

    def _ready_workers(self) -> list[dict[str, Any]] | None:
        """Workers holding credit, or None while the supervisor is not ready."""
        base = f"http://127.0.0.1:{self._http_port}"
        try:
            _get_json(f"{base}/readyz")  # 503 (an HTTPError) until partitions are assigned
            workers: list[dict[str, Any]] = _get_json(f"{base}/v1/workers")["workers"]
        except (urllib.error.URLError, OSError):
            return None
        return [w for w in workers if w["available_credit"] or w["in_flight"] or w["acks"]]


@dataclass(frozen=True, slots=True)
class MeshLayout:
    """A hub and a worker node on free local ports, and their manifest file."""

    manifest: Path
    ports: dict[str, int]

    @classmethod
    def create(cls, workdir: Path) -> MeshLayout:
        """Pick ports and write the manifest (hub, and a worker node serving `default`)."""
        ports = {"hub": _free_port(), "worker": _free_port()}
        doc = {
            "nodes": [
                {"id": "hub", "role": "hub", "endpoint": f"127.0.0.1:{ports['hub']}"},
                {
                    "id": "worker",
                    "role": "worker",
                    "endpoint": f"127.0.0.1:{ports['worker']}",
                    "domains": ["default"],
                },
            ]
        }
        folder = workdir / "mesh"
        folder.mkdir(parents=True, exist_ok=True)
        manifest = folder / "services.json"
        manifest.write_text(json.dumps(doc))
        return cls(manifest, ports)

    def supervisor_env(self) -> dict[str, str]:
        """The supervisor publishes through the hub (one forward, as in production)."""
        return {
            "MESH_PUBLISH_ENDPOINT": f"127.0.0.1:{self.ports['hub']}",
            "MESH_SOURCE_NODE": "supervisor",
            "MESH_PUBLISH_DOMAIN": "default",
            "MESH_SERVICES_FILE": str(self.manifest),
        }

    def worker_env(self) -> dict[str, str]:
        """Workers subscribe at the worker node."""
        return {"MESH_ENDPOINT": f"127.0.0.1:{self.ports['worker']}", "MESH_DOMAIN": "default"}


def _free_port() -> int:
    """A local TCP port that was free a moment ago (mesh nodes need fixed addresses)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get_json(url: str) -> Any:
    """GET a JSON document from the local supervisor."""
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - http://127.0.0.1
        return json.loads(response.read())


def _child_env(settings: Settings) -> dict[str, str]:
    """The environment of the children: ours without streamplane settings, plus Kafka's.

    The Kafka settings go through the environment rather than flags so that secrets
    never show in the process list.
    """
    env = {k: v for k, v in os.environ.items() if k.upper() not in _SETTING_VARIABLES}
    for name in _KAFKA_FIELDS:
        value = getattr(settings.kafka, name)
        if value is not None:
            plain = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
            env[name.upper()] = plain
    return env


class RssSampler:
    """Samples the resident memory of watched processes; keeps the peak per role."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._watched: dict[int, tuple[str, psutil.Process]] = {}
        self._peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-rss", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def watch(self, role: str, pid: int) -> None:
        """Start sampling process `pid` under `role`."""
        with contextlib.suppress(psutil.Error), self._lock:
            self._watched[pid] = (role, psutil.Process(pid))

    def unwatch(self, pid: int) -> None:
        """Stop sampling process `pid`."""
        with self._lock:
            self._watched.pop(pid, None)

    def peak_mb(self, role: str) -> float | None:
        """The highest RSS seen for `role`, in MiB (None if never sampled)."""
        with self._lock:
            peak = self._peaks.get(role)
        return round(peak / 2**20, 1) if peak is not None else None

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                watched = list(self._watched.values())
            for role, process in watched:
                try:
                    rss = process.memory_info().rss
                except psutil.Error:
                    continue  # exited between the list and the sample
                with self._lock:
                    self._peaks[role] = max(self._peaks.get(role, 0), rss)


# ------------------------------------------------------------------------------ bars


def _bar(label: str, total: int) -> tqdm[NoReturn]:
    """A progress bar on stderr, so stdout carries only the JSON line."""
    return tqdm(
        total=total,
        desc=label,
        unit="msg",
        unit_scale=True,
        file=sys.stderr,
        mininterval=0.5,
        dynamic_ncols=True,
        leave=True,
    )


def _advance(bar: tqdm[NoReturn]) -> Callable[[int], None]:
    """A progress callback taking a running total."""

    def advance(total: int) -> None:
        bar.update(total - bar.n)

    return advance
