"""The sensors, one tick at a time, with ``build_sensor_context(cursor=...)``.

Offsets come from a scripted ``KafkaResource.read_group`` (the admin reads themselves
are exercised against the real broker in ``test_lag_sensor_on_kafka``); the unreachable
broker is a real closed port.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid

import pytest
from dagster import (
    AssetObservation,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    SensorResult,
    build_sensor_context,
)
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)

from streamplane.jobs import HEARTBEAT_TAG, ROLE_TAG, SLOT_TAG
from streamplane.platform.dead_letter_reader import DeadLetter
from streamplane.platform.kafka.admin import ensure_topics
from streamplane.platform.kafka.group_offsets import TopicOffsets
from streamplane.resources import FleetResource, KafkaResource, StreamplaneResource
from streamplane.sensors import kafka_lag
from streamplane.sensors.dead_letter_count import LetterCount
from streamplane.sensors.dead_letter_read import LetterRead
from streamplane.sensors.kafka_lag import build_kafka_lag_sensor
from streamplane.sensors.liveness import (
    LaunchCounter,
    build_supervisor_liveness_sensor,
    missing_slots,
)
from streamplane.sensors.runs import fail_silent_runs
from streamplane.sensors.scaling import LagCursor
from tests.support.procs import free_port
from tests.support.topics import FreshTopics

FLEET = FleetResource(max_workers=4, lag_per_worker=1000, stuck_after_ticks=2)


class ScriptedKafka:
    """Stands in for the admin reads: returns the offsets it was last given.

    The dead-letter topic too: one partition holding ``letters`` (offsets 0, 1, ...),
    read from the count's position to the end as the real read does.
    """

    def __init__(self) -> None:
        self.offsets = TopicOffsets(ends={}, committed={}, lag={})
        self.calls = 0
        self.letters: list[DeadLetter] = []

    def set(self, committed: dict[int, int], lag: dict[int, int]) -> None:
        ends = {p: committed.get(p, 0) + n for p, n in lag.items()}
        self.offsets = TopicOffsets(ends=ends, committed=committed, lag=lag)

    def read_group(self, _resource: KafkaResource, group: str, topic: str) -> TopicOffsets:
        assert group == "g"
        assert topic == "in"
        self.calls += 1
        return self.offsets

    def read_letters(
        self, _conf: object, topic: str, count: LetterCount, _timeout: float
    ) -> LetterRead:
        assert topic == "in.dlq"
        end = len(self.letters)
        start = count.start_offsets({0: (0, end)})[0]
        read = self.letters[start:]
        for one in read:
            count.add(one)
        return LetterRead(ends={0: end}, newest=read[-5:], complete=True)


@pytest.fixture
def kafka(monkeypatch: pytest.MonkeyPatch) -> ScriptedKafka:
    scripted = ScriptedKafka()
    monkeypatch.setattr(
        KafkaResource, "read_group", lambda self, g, t: scripted.read_group(self, g, t)
    )
    monkeypatch.setattr(kafka_lag, "read_new_letters", scripted.read_letters)
    return scripted


def letter(tenant: str, kind: str, offset: int) -> DeadLetter:
    return DeadLetter(
        "in.dlq", 0, offset, 0, f"in/0@{offset}", tenant, kind, "bad json", "1", b"{oops\n"
    )


def streamplane(bootstrap: str = "127.0.0.1:9", timeout: float = 10) -> StreamplaneResource:
    return StreamplaneResource(
        kafka=KafkaResource(bootstrap_servers=bootstrap, request_timeout_s=timeout),
        input_topic="in",
        consumer_group="g",
    )


def lag_tick(
    instance: DagsterInstance,
    cursor: str | None,
    fleet: FleetResource = FLEET,
    resource: StreamplaneResource | None = None,
) -> SensorResult:
    with build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"streamplane": resource or streamplane(), "fleet": fleet},
    ) as context:
        result = build_kafka_lag_sensor()(context)
    assert isinstance(result, SensorResult)
    return result


def liveness_tick(
    instance: DagsterInstance, cursor: str | None, fleet: FleetResource
) -> SensorResult:
    with build_sensor_context(
        instance=instance, cursor=cursor, resources={"fleet": fleet}
    ) as context:
        result = build_supervisor_liveness_sensor()(context)
    assert isinstance(result, SensorResult)
    return result


def add_run(
    instance: DagsterInstance,
    job: str,
    status: DagsterRunStatus,
    tags: dict[str, str],
) -> DagsterRun:
    """A run as the daemon would have stored it (queued runs name their code location)."""
    origin = RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(
            code_location_origin=RegisteredCodeLocationOrigin("streamplane"),
            repository_name="__repository__",
        ),
        job_name=job,
    )
    run = DagsterRun(
        job_name=job,
        run_id=str(uuid.uuid4()),
        status=status,
        tags=tags,
        remote_job_origin=origin,
    )
    return instance.add_run(run)


def observation(result: SensorResult, asset: str = "raw_events") -> AssetObservation:
    (event,) = [e for e in result.asset_events if e.asset_key.path == [asset]]
    assert isinstance(event, AssetObservation)
    return event


def meta(event: AssetObservation, key: str) -> object:
    return event.metadata[key].value


# ------------------------------------------------------------------------------ lag


def test_backlog_launches_workers_and_records_lag(
    instance: DagsterInstance, kafka: ScriptedKafka
) -> None:
    kafka.set(committed={}, lag={0: 1500, 1: 1000})
    result = lag_tick(instance, None)

    assert len(result.run_requests or []) == 3
    keys = [r.run_key for r in result.run_requests or []]
    cursor = LagCursor.from_json(result.cursor)
    assert keys == [f"worker-{cursor.epoch}-{n}" for n in (1, 2, 3)]
    request = (result.run_requests or [])[0]
    assert request.job_name == "worker_job"
    assert request.run_config == {
        "ops": {
            "run_worker": {
                "config": {"max_inflight": 4, "engine": "polars", "idle_exit_seconds": 60.0}
            }
        }
    }
    assert cursor.launches == 3
    assert cursor.committed == {0: -1, 1: -1}
    event = observation(result)
    assert meta(event, "total_lag") == 2500
    assert meta(event, "lag_partition_0") == 1500
    assert meta(event, "lag_partition_1") == 1000
    assert meta(event, "desired_workers") == 3


def test_no_lag_launches_nothing(instance: DagsterInstance, kafka: ScriptedKafka) -> None:
    kafka.set(committed={0: 500, 1: 700}, lag={0: 0, 1: 0})
    previous = LagCursor(committed={0: 400, 1: 700}, launches=5, epoch="e1").to_json()
    result = lag_tick(instance, previous)

    assert not result.run_requests
    assert result.skip_reason is not None
    assert "lag 0" in (result.skip_reason.skip_message or "")
    cursor = dataclasses.replace(LagCursor.from_json(result.cursor), traffic={})
    assert cursor == LagCursor(committed={0: 500, 1: 700}, launches=5, epoch="e1")
    assert meta(observation(result), "total_lag") == 0


def test_stuck_partition_is_reported_and_not_scaled_on(
    instance: DagsterInstance, kafka: ScriptedKafka
) -> None:
    # Partition 0 holds a huge lag, its committed offset frozen at 100, while the group
    # keeps acking partitions 1 and 2: a stuck partition, not a backlog.
    # The other partitions keep up with new records: their lag stays 0.
    lag = {0: 1_000_000, 1: 0, 2: 0}
    cursor = LagCursor(committed={0: 100, 1: 1000, 2: 2000}, epoch="e").to_json()
    kafka.set(committed={0: 100, 1: 1100, 2: 2100}, lag=lag)
    first = lag_tick(instance, cursor)
    # One still tick is not yet proof (stuck_after_ticks=2): it is a backlog so far.
    assert LagCursor.from_json(first.cursor).still_ticks == {0: 1}
    assert len(first.run_requests or []) == 4

    # Those runs came and went (idle exit); partition 0 still has not moved.
    kafka.set(committed={0: 100, 1: 1200, 2: 2200}, lag=lag)
    second = lag_tick(instance, first.cursor)

    assert not second.run_requests, "a stuck partition must not scale the fleet"
    message = second.skip_reason.skip_message if second.skip_reason else ""
    assert "stuck partitions" in (message or "")
    assert "partition 0 (lag 1000000)" in (message or "")
    event = observation(second)
    assert meta(event, "stuck_partitions") == [0]
    assert meta(event, "scaling_lag") == 0
    assert meta(event, "total_lag") == 1_000_000
    # The cursor carries the committed offsets the next tick compares with.
    assert LagCursor.from_json(second.cursor).committed == {0: 100, 1: 1200, 2: 2200}
    assert LagCursor.from_json(second.cursor).still_ticks == {0: 2}


def test_ticks_record_throughput_and_dead_letters_by_tenant_and_kind(
    instance: DagsterInstance, kafka: ScriptedKafka
) -> None:
    kafka.set(committed={0: 100, 1: 100}, lag={0: 50, 1: 50})
    kafka.letters = [letter("t1", "parse", 0), letter("t3", "attempts", 1)]
    first = lag_tick(instance, None)
    assert meta(observation(first), "records_in_per_s") == 0.0, "no rate without a previous tick"
    dead = observation(first, "dead_letters")
    assert meta(dead, "dead_letters_total") == 2, "the first read counts every retained letter"
    assert meta(dead, "dead_letters_per_s") == 0.0, "a first read is no rate"
    # The next tick, as if a few seconds later: 300 more in, 200 more done, 3 letters.
    before = json.loads(first.cursor or "")
    before["traffic"]["at"] -= 4.0
    kafka.set(committed={0: 200, 1: 200}, lag={0: 100, 1: 100})
    kafka.letters += [
        letter("t1", "parse", 2),
        letter("t1", "schema", 3),
        letter("t2", "parse", 4),
    ]
    second = lag_tick(instance, json.dumps(before))

    lag = observation(second)
    assert 0 < float(meta(lag, "records_out_per_s")) < float(meta(lag, "records_in_per_s"))  # type: ignore[arg-type]
    dead = observation(second, "dead_letters")
    assert meta(dead, "dead_letters_total") == 5
    assert meta(dead, "dead_letters_unread") == 0
    assert meta(dead, "dead_letters_tenant_t1") == 3
    assert meta(dead, "dead_letters_tenant_t2") == 1
    assert meta(dead, "dead_letters_tenant_t3") == 1
    assert meta(dead, "dead_letters_kind_parse") == 3
    assert meta(dead, "dead_letters_kind_schema") == 1
    assert meta(dead, "dead_letters_kind_attempts") == 1
    # 2 and 3 more letters in the 4 s (and a little) since the first tick.
    assert 0.45 < float(meta(dead, "dead_letter_rate_tenant_t1")) <= 0.5  # type: ignore[arg-type]
    assert 0.7 < float(meta(dead, "dead_letters_per_s")) <= 0.75  # type: ignore[arg-type]
    latest = str(meta(dead, "latest"))
    assert "tenant=t2 kind=parse" in latest
    assert "\\n" in latest, "the value's newline is escaped"
    # The counts and the read position carry on in the cursor.
    count = LagCursor.from_json(second.cursor).traffic["dead_letters"]
    assert count["by_kind"] == {"attempts": 1, "parse": 3, "schema": 1}
    assert count["positions"] == {"0": 5}


def test_unreachable_broker_reports_and_scales_nothing(instance: DagsterInstance) -> None:
    closed = f"127.0.0.1:{free_port()}"
    cursor = LagCursor(committed={0: 5}, launches=2, epoch="e").to_json()
    started = time.monotonic()
    result = lag_tick(instance, cursor, resource=streamplane(closed, timeout=3))
    elapsed = time.monotonic() - started

    assert not result.run_requests
    assert result.skip_reason is not None
    message = result.skip_reason.skip_message or ""
    assert f"Kafka at {closed} is unreachable" in message
    assert "no scaling this tick" in message
    assert result.cursor == cursor, "the cursor is kept for the next tick"
    assert result.asset_events == []
    assert elapsed < 30, "the read is bounded well under the 60 s sensor timeout"


def test_queued_runs_count_so_a_tick_does_not_over_launch(
    instance: DagsterInstance, kafka: ScriptedKafka
) -> None:
    kafka.set(committed={}, lag={0: 3500})  # wants 4
    first = lag_tick(instance, None)
    assert len(first.run_requests or []) == 4
    # The daemon has created those runs, but the queue has not started them yet.
    for _ in range(3):
        add_run(instance, "worker_job", DagsterRunStatus.QUEUED, {ROLE_TAG: "worker"})
    add_run(instance, "worker_job", DagsterRunStatus.STARTING, {ROLE_TAG: "worker"})
    # A finished and a canceling run do not count.
    add_run(instance, "worker_job", DagsterRunStatus.SUCCESS, {ROLE_TAG: "worker"})
    add_run(instance, "worker_job", DagsterRunStatus.CANCELING, {ROLE_TAG: "worker"})

    second = lag_tick(instance, first.cursor)
    assert not second.run_requests
    assert meta(observation(second), "active_workers") == 4

    kafka.set(committed={}, lag={0: 10_000})  # more lag: still capped at max_workers=4
    third = lag_tick(instance, second.cursor)
    assert not third.run_requests


def test_gpu_engine_launches_the_gpu_job(instance: DagsterInstance, kafka: ScriptedKafka) -> None:
    kafka.set(committed={}, lag={0: 10})
    fleet = FleetResource(worker_engine="cudf", worker_idle_exit_s=5)
    result = lag_tick(instance, None, fleet=fleet)
    (request,) = result.run_requests or []
    assert request.job_name == "gpu_worker_job"
    assert request.run_config["ops"]["run_worker"]["config"]["engine"] == "cudf"


def test_silent_worker_run_is_failed_and_no_longer_counted(
    instance: DagsterInstance, kafka: ScriptedKafka
) -> None:
    stale = f"{time.time() - 1000:.0f}"
    dead = add_run(
        instance, "worker_job", DagsterRunStatus.STARTED, {ROLE_TAG: "worker", HEARTBEAT_TAG: stale}
    )
    kafka.set(committed={}, lag={0: 900})
    result = lag_tick(instance, None)
    assert len(result.run_requests or []) == 1
    run = instance.get_run_by_id(dead.run_id)
    assert run is not None
    assert run.status == DagsterRunStatus.FAILURE


@pytest.mark.kafka
def test_lag_sensor_on_kafka(
    instance: DagsterInstance, kafka_bootstrap: str, fresh_topics: FreshTopics
) -> None:
    from confluent_kafka import Producer

    conf = {"bootstrap.servers": kafka_bootstrap}
    ensure_topics(conf, {fresh_topics.input: 2})
    producer = Producer(conf)
    for i in range(30):
        producer.produce(fresh_topics.input, b"{}", partition=i % 2)
    assert producer.flush(30) == 0
    resource = StreamplaneResource(
        kafka=KafkaResource(bootstrap_servers=kafka_bootstrap),
        input_topic=fresh_topics.input,
        consumer_group=fresh_topics.group,
    )
    result = lag_tick(instance, None, FleetResource(lag_per_worker=10), resource)
    assert len(result.run_requests or []) == 3
    event = observation(result)
    assert meta(event, "total_lag") == 30
    assert meta(event, "lag_partition_0") == 15
    assert meta(event, "end_offset_total") == 30


# ------------------------------------------------------------------------- liveness


def test_liveness_launches_one_run_per_missing_slot(instance: DagsterInstance) -> None:
    result = liveness_tick(instance, None, FleetResource(supervisors=2))
    requests = result.run_requests or []
    assert [r.tags[SLOT_TAG] for r in requests] == ["0", "1"]
    assert [r.run_config for r in requests] == [
        {"ops": {"run_supervisor": {"config": {"slot": 0}}}},
        {"ops": {"run_supervisor": {"config": {"slot": 1}}}},
    ]
    counter = LaunchCounter.from_json(result.cursor)
    assert counter.launches == 2
    assert [r.run_key for r in requests] == [
        f"supervisor-{counter.epoch}-1",
        f"supervisor-{counter.epoch}-2",
    ]


def test_liveness_skips_while_supervisors_live_or_queue(instance: DagsterInstance) -> None:
    add_run(
        instance,
        "supervisor_job",
        DagsterRunStatus.STARTED,
        {ROLE_TAG: "supervisor", SLOT_TAG: "0"},
    )
    add_run(
        instance, "supervisor_job", DagsterRunStatus.QUEUED, {ROLE_TAG: "supervisor", SLOT_TAG: "1"}
    )
    cursor = LaunchCounter(launches=2, epoch="e").to_json()
    result = liveness_tick(instance, cursor, FleetResource(supervisors=2))
    assert not result.run_requests
    assert result.skip_reason is not None
    assert "2 of 2 supervisor runs alive" in (result.skip_reason.skip_message or "")
    assert result.cursor == cursor


def test_liveness_replaces_a_dead_supervisor(instance: DagsterInstance) -> None:
    stale = f"{time.time() - 1000:.0f}"
    dead = add_run(
        instance,
        "supervisor_job",
        DagsterRunStatus.STARTED,
        {ROLE_TAG: "supervisor", SLOT_TAG: "0", HEARTBEAT_TAG: stale},
    )
    add_run(
        instance,
        "supervisor_job",
        DagsterRunStatus.CANCELED,
        {ROLE_TAG: "supervisor", SLOT_TAG: "0"},
    )
    cursor = LaunchCounter(launches=1, epoch="e").to_json()
    result = liveness_tick(instance, cursor, FleetResource(supervisors=1, heartbeat_timeout_s=60))

    run = instance.get_run_by_id(dead.run_id)
    assert run is not None
    assert run.status == DagsterRunStatus.FAILURE
    (request,) = result.run_requests or []
    assert request.run_key == "supervisor-e-2"
    assert request.tags[SLOT_TAG] == "0"
    assert json.loads(result.cursor or "") == {"epoch": "e", "launches": 2}


def test_a_supervisor_launched_by_hand_counts(instance: DagsterInstance) -> None:
    add_run(instance, "supervisor_job", DagsterRunStatus.STARTED, {ROLE_TAG: "supervisor"})
    result = liveness_tick(instance, None, FleetResource(supervisors=1))
    assert not result.run_requests


def test_missing_slots() -> None:
    assert missing_slots(3, []) == [0, 1, 2]
    assert missing_slots(3, [1]) == [0, 2]
    assert missing_slots(2, [None, 0]) == []
    assert missing_slots(2, [None]) == [0]
    assert missing_slots(1, [0, 0]) == []
    assert missing_slots(0, []) == []


def test_fresh_heartbeat_keeps_a_run(instance: DagsterInstance) -> None:
    now = time.time()
    add_run(
        instance,
        "supervisor_job",
        DagsterRunStatus.STARTED,
        {ROLE_TAG: "supervisor", HEARTBEAT_TAG: f"{now - 5:.0f}"},
    )
    assert fail_silent_runs(instance, "supervisor", 60, clock=lambda: now) == []
    assert len(fail_silent_runs(instance, "supervisor", 60, clock=lambda: now + 100)) == 1
