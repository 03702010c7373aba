"""`streamplane bench`: a raw passthrough against the pipeline, in one run, as one JSON line.

Phases, each on fresh topics and consumer groups so that no phase sees another's records
or offsets:

1. fill: COUNT demo events (~200 bytes) into a fresh input topic;
2. passthrough: one process consumes, produces, flushes and commits through the Kafka
   layer's thin wrappers over confluent-kafka, the baseline a good engineer would write
   by hand, with the same client settings as the pipeline (acks=all, idempotence, lz4;
   `fetch.queue.backoff.ms=10`);
3. pipeline: a real `streamplane supervisor` and one `streamplane worker` subprocess;
4. pipeline2: the same with two workers;
   (with `--transport mesh`) mesh_pipeline: one supervisor and one worker again, with
   tasks published through MeshData (supervisor -> hub -> worker node -> worker) and
   acks on gRPC, against hub and worker `streamplane mesh-node` processes;
5. latency: one supervisor and one worker while fresh events arrive at half the rate
   measured in 3, after a warm-up of one second's events has been committed (a fresh
   fleet's first second pays metadata look-ups and connections; the warm-up records are
   verified but have no latency figure); latency is the output record's Kafka timestamp
   (CreateTime, set at the worker's produce) minus its `src_timestamp_ms` (the input
   record's timestamp);
6. verify: every output and dead-letter record of 3-5 is matched to its input by its
   sp-src-* headers: inputs never seen are lost, inputs seen twice are duplicates.

A pipeline run's throughput is the records handled from the moment the supervisor is
ready and every worker holds credit until the group's committed offsets reach the end
offsets. Supervisor and workers run with default settings except addresses, topics and
group, so the figures are what users get. Progress goes to stderr, the JSON line to
stdout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from tqdm import tqdm

from streamplane.config import Settings
from streamplane.dev.bench import stages
from streamplane.dev.bench.cpu import (
    cpu_seconds,
    own_cpu_seconds,
    pipeline_us_per_record,
    projected_rate,
    us_per_record,
)
from streamplane.dev.bench.exceptions import BenchError
from streamplane.dev.bench.fleet import Fleet, MeshLayout, child_env
from streamplane.dev.bench.limits import (
    DELETE_TIMEOUT_S,
    LATENCY_SECONDS,
    POLL_S,
    SEED,
    STALL_TIMEOUT_S,
    TENANTS,
    USERS,
    WARMUP_SECONDS,
)
from streamplane.dev.bench.passthrough import copy_all
from streamplane.dev.bench.progress import advance
from streamplane.dev.bench.progress import bar as progress_bar
from streamplane.dev.bench.readers import reader_config
from streamplane.dev.bench.routes import Route
from streamplane.dev.bench.rss import RssSampler
from streamplane.dev.bench.verify import LatencyResult, Tally, read_until
from streamplane.dev.bench.visibility import VisibilityTail
from streamplane.dev.demo_events import DemoEvent, events, produce_events
from streamplane.exceptions import TransientError
from streamplane.platform.kafka.admin import (
    committed_offsets,
    delete_topics,
    end_offsets,
    ensure_topics,
)
from streamplane.platform.kafka.config import (
    consumer_config,
    demo_producer_config,
    producer_config,
)
from streamplane.platform.kafka.consumer import BEGINNING, GroupConsumer
from streamplane.platform.kafka.producer import DurableProducer

__all__ = ["Bench", "Route", "RunResult"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunResult:
    """Records handled by one run while timed, and how long that took."""

    records: int
    seconds: float
    # CPU microseconds per timed record, by role (supervisor, worker, broker, passthrough).
    cpu_us: dict[str, float | None] = field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        """Records per second; None when nothing was left to time."""
        return self.records / self.seconds if self.records > 0 and self.seconds > 0 else None


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
    # exactly_once: also the one-worker pipeline and the latency run under it.
    guarantee: str = "at_least_once"
    # The embedded broker's JVM, whose CPU the runs count too (None: an external cluster).
    broker_pid: int | None = None
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
        eos_figures: dict[str, Any] = {}
        eos_tallies: list[Tally] = []
        if self.guarantee == "exactly_once":
            eos_figures, eos_tallies = self.exactly_once(source, ends, pipeline)
        latency = self.latency(pipeline.rate)
        tallies = [self.verify(one, ends), self.verify(two, ends), self.verify_latency(latency)]
        tallies += mesh_tallies + eos_tallies
        return {
            "transport": self.transport,
            "guarantee": self.guarantee,
            **_rate("passthrough", passthrough),
            **_rate("pipeline", pipeline),
            **_rate("pipeline2", pipeline2),
            "ratio_pipeline_to_passthrough": _ratio(pipeline.rate, passthrough.rate),
            "ratio_pipeline2_to_passthrough": _ratio(pipeline2.rate, passthrough.rate),
            **cpu_figures(passthrough, pipeline, pipeline2),
            **mesh_figures,
            **eos_figures,
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
        producer = DurableProducer(demo_producer_config(self.kafka))
        with progress_bar("fill", self.count) as bar:
            stream = events(self.count, TENANTS, USERS, 0.0, SEED)
            produce_events(producer, topic, stream, None, on_progress=advance(bar))
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
        producer = DurableProducer({**conf, "on_delivery": delivered})
        consumer = GroupConsumer(consumer_config(self.settings, route.group))
        try:
            consumer.assign({(source, p): BEGINNING for p in ends})
            with progress_bar("passthrough", self.count) as bar:
                started, cpu_before = time.monotonic(), self._cpu([])
                copy_all(consumer, producer, route, ends, failures, bar)
                seconds, cpu_after = time.monotonic() - started, self._cpu([])
        finally:
            consumer.close()
        return RunResult(self.count, seconds, us_per_record(cpu_before, cpu_after, self.count))

    def _cpu(self, pids: list[tuple[str, int]]) -> dict[str, float]:
        """CPU seconds so far of ``pids``, of the broker, and of this process (passthrough)."""
        if self.broker_pid is not None:
            pids = [*pids, ("broker", self.broker_pid)]
        return {**cpu_seconds(pids), "passthrough": own_cpu_seconds()}

    # -- 3 and 4. pipeline ------------------------------------------------------------
    def pipeline(
        self,
        route: Route,
        ends: dict[int, int],
        workers: int,
        mesh: MeshLayout | None = None,
        supervisor_env: Mapping[str, str] | None = None,
        worker_env: Mapping[str, str] | None = None,
    ) -> RunResult:
        """Run a supervisor and `workers` workers over the filled topic until committed.

        With `mesh`, its nodes start first and tasks go through them (MeshData);
        `worker_env` then does not apply.
        """
        with self.fleet(route) as fleet:
            if mesh is None:
                fleet.start_supervisor(supervisor_env)
            else:
                fleet.start_mesh(mesh)
                fleet.start_supervisor(mesh.supervisor_env())
                worker_env = mesh.worker_env()
            # The supervisor consumes from now on, while the workers start: up to
            # MAX_PENDING_RECORDS records (all of a short run) before the clock below.
            consuming_before = self._cpu(fleet.pids())
            fleet.start_workers(workers, worker_env)
            started, done_before = fleet.wait_ready(workers)
            cpu_before = self._cpu(fleet.pids())
            label = f"{'mesh ' if mesh else ''}pipeline x{workers}"
            with progress_bar(label, self.count) as bar:
                finished = self.wait_committed(route, ends, fleet, bar)
            cpu_after = self._cpu(fleet.pids())
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
        cpu_us = pipeline_us_per_record(consuming_before, cpu_before, cpu_after, timed, self.count)
        return RunResult(timed, finished - started, cpu_us)

    def fleet(self, route: Route) -> Fleet:
        """A fleet for one run; its exit stops every process and counts unclean exits."""
        self.topics += [route.output, route.dlq]  # the supervisor creates both
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        return Fleet(route, child_env(self.settings), logs, self.rss, self._count_unclean)

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
    def latency(
        self,
        max_rate: float | None,
        name: str = "latency",
        supervisor_env: Mapping[str, str] | None = None,
        tail: bool = False,
        worker_env: Mapping[str, str] | None = None,
    ) -> LatencyResult:
        """Produce at half `max_rate` into a fresh topic through one supervisor and worker.

        With `tail`, a read_committed reader tails the output meanwhile and the result
        holds each record's delay from its write to that reader seeing it.
        """
        if not max_rate:
            raise BenchError(f"the pipeline run before {name} measured no throughput")
        rate = max_rate / 2
        source = f"{self.prefix}.{name}.in"
        self.topics.append(source)
        ensure_topics(self.kafka, {source: self.partitions})
        route = self.route(name, source)
        count = max(1, min(self.count, int(rate * LATENCY_SECONDS)))
        warmup = max(1, int(rate * WARMUP_SECONDS))
        # Made before the clock starts, so the pacing loop only produces: generating
        # ~25 us of JSON per event here would take CPU from the pipeline under test.
        batch = list(events(count, TENANTS, USERS, 0.0, SEED + 1))
        warm = list(events(warmup, TENANTS, USERS, 0.0, SEED + 2))
        with self.fleet(route) as fleet:
            fleet.start(1, supervisor_env, worker_env)
            fleet.wait_ready(1)
            visible = (
                VisibilityTail(self.kafka, route.output, self.partitions, f"{route.group}.tail")
                if tail
                else None
            )
            if visible is not None:
                visible.start()
            # librdkafka's default linger (5 ms): the input's timestamp is taken at
            # produce(), so a longer linger would count as pipeline latency.
            producer = DurableProducer({**self.kafka, "linger.ms": 5})
            self.warm_up(route, fleet, producer, warm, rate, name)
            ages_before = stages.read_buckets(fleet.metrics())
            measured_from_ms = int(time.time() * 1000)
            with progress_bar(name, count) as bar:
                produce_events(producer, source, iter(batch), rate, on_progress=advance(bar))
                bar.update(count - bar.n)
            produced = time.monotonic()
            ends = end_offsets(self.kafka, source)
            with progress_bar(f"{name} drain", count) as bar:
                drained = self.wait_committed(route, ends, fleet, bar)
            self.note_task_size(route, fleet)
            ages = stages.since(ages_before, stages.read_buckets(fleet.metrics()))
            if visible is not None:
                visible.finish(warmup + count)
        # Seconds the pipeline needed after the last event was written; well above the
        # commit interval means it did not keep up with the rate.
        drain_s = drained - produced
        result = LatencyResult(
            rate,
            count,
            drain_s,
            route,
            Tally.expecting(source, ends),
            measured_from_ms=measured_from_ms,
            warmup_records=warmup,
            stage_p50_ms=stages.stage_medians(ages),
        )
        result.visibility = visible
        return result

    def warm_up(
        self,
        route: Route,
        fleet: Fleet,
        producer: DurableProducer,
        warm: list[DemoEvent],
        rate: float,
        name: str,
    ) -> None:
        """Push `warm` through the fleet at `rate` and wait until it is all committed.

        The latency figures leave these records out (their tally keeps them): a fresh
        fleet's first second pays metadata look-ups and connections, not load.
        """
        with progress_bar(f"{name} warm-up", len(warm)) as bar:
            produce_events(producer, route.input, iter(warm), rate, on_progress=advance(bar))
            bar.update(len(warm) - bar.n)
        if producer.flush(STALL_TIMEOUT_S):
            raise BenchError(f"the {name} warm-up was not written within {STALL_TIMEOUT_S:.0f} s")
        ends = end_offsets(self.kafka, route.input)
        with progress_bar(f"{name} warm-up drain", len(warm)) as bar:
            self.wait_committed(route, ends, fleet, bar)

    # -- exactly_once (--guarantee exactly_once) ----------------------------------------
    def exactly_once(
        self, source: str, ends: dict[int, int], alo: RunResult
    ) -> tuple[dict[str, Any], list[Tally]]:
        """The one-worker pipeline and the latency run under PROCESSING_GUARANTEE=exactly_once.

        The verification reads under read_committed (librdkafka's default), so the
        tallies count what a transactional reader sees.
        """
        route = self.route("eos1", source)
        eos = self.pipeline(route, ends, workers=1, supervisor_env=EXACTLY_ONCE)
        latency = self.latency(eos.rate, "eos_latency", EXACTLY_ONCE, tail=True)
        tallies = [self.verify(route, ends), self.verify_latency(latency)]
        late = latency.figures()
        figures: dict[str, Any] = {
            **_rate("eos_pipeline", eos),
            "ratio_eos_to_alo": _ratio(eos.rate, alo.rate),
            "eos_supervisor_cpu_us_per_record": eos.cpu_us.get("supervisor"),
            "eos_worker_cpu_us_per_record": eos.cpu_us.get("worker"),
            "eos_broker_cpu_us_per_record": eos.cpu_us.get("broker"),
            "eos_latency_records": late["latency_records"],
            "eos_latency_warmup_records": late["latency_warmup_records"],
            "eos_latency_p50_ms": late["latency_p50_ms"],
            "eos_latency_p99_ms": late["latency_p99_ms"],
            "eos_latency_stage_p50_ms": late["latency_stage_p50_ms"],
        }
        if latency.visibility is not None:
            figures.update(latency.visibility.figures("eos_visibility"))
        return figures, tallies

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
        # exactly_once topics end in a commit marker, never delivered as a record.
        consumer = GroupConsumer(
            reader_config(self.kafka, f"{self.prefix}.reader", **{"enable.partition.eof": True})
        )
        try:
            consumer.assign({(topic, p): BEGINNING for p in ends})
            with progress_bar(label, sum(ends.values())) as bar:
                read_until(consumer, ends, visit, bar)
        finally:
            consumer.close()

    def delete_topics(self) -> None:
        """Delete this run's topics (best effort: a failure is logged, not raised)."""
        if not self.topics:
            return
        # A topic never created (the run failed before the supervisor started) counts
        # as deleted; delete_topics leaves it out of the failures.
        try:
            failures: Mapping[str, Exception] = delete_topics(
                self.kafka, self.topics, timeout=DELETE_TIMEOUT_S
            )
        except Exception as exc:  # cleanup must not mask the run's result
            failures = dict.fromkeys(self.topics, exc)
        for topic, error in failures.items():
            logger.warning(
                "could not delete a bench topic", extra={"topic": topic, "error": str(error)}
            )


EXACTLY_ONCE = {"PROCESSING_GUARANTEE": "exactly_once"}


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


def cpu_figures(
    passthrough: RunResult, pipeline: RunResult, pipeline2: RunResult
) -> dict[str, float | None]:
    """CPU per record by role, and the rate those costs project to on 16 cores."""
    supervisor = pipeline.cpu_us.get("supervisor")
    worker = pipeline.cpu_us.get("worker")
    return {
        "supervisor_cpu_us_per_record": supervisor,
        "worker_cpu_us_per_record": worker,
        "pipeline2_supervisor_cpu_us_per_record": pipeline2.cpu_us.get("supervisor"),
        "pipeline2_worker_cpu_us_per_record": pipeline2.cpu_us.get("worker"),
        "passthrough_cpu_us_per_record": passthrough.cpu_us.get("passthrough"),
        "broker_cpu_us_per_record": pipeline.cpu_us.get("broker"),
        "passthrough_broker_cpu_us_per_record": passthrough.cpu_us.get("broker"),
        "projected_records_per_s_at_16_cores": projected_rate(supervisor, worker),
    }
