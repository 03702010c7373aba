"""``kafka_lag_sensor``: the supervisor group's lag drives worker runs.

Each tick reads end offsets, committed offsets and lag per partition with the admin
client (never a consumer poll: no group join, no rebalance of the supervisors, and
every request bounded by ``KafkaResource.request_timeout_s``), records them as an
observation of ``raw_events`` (so the UI plots lag over time), and launches worker runs
up to ``clamp(ceil(lag / lag_per_worker), min_workers, max_workers)``, stuck partitions'
lag left out (see :mod:`streamplane.sensors.scaling`). Workers scale down by themselves:
they exit after ``worker_idle_exit_s`` without work.

A broker that cannot be reached skips the tick with the reason and keeps the cursor; no
worker is launched on a lag it could not read.
"""

import dataclasses
from collections.abc import Mapping

from dagster import (
    AssetKey,
    AssetObservation,
    DefaultSensorStatus,
    MetadataValue,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from streamplane.jobs import WORKER_JOBS, gpu_worker_job, worker_job
from streamplane.platform.kafka.exceptions import KafkaPlatformError, KafkaUnavailable
from streamplane.platform.kafka.group_offsets import TopicOffsets
from streamplane.progress import fetch_json, local_url
from streamplane.resources import FleetResource, StreamplaneResource
from streamplane.sensors.dead_letter_count import LetterCount
from streamplane.sensors.dead_letter_read import read_new_letters
from streamplane.sensors.runs import alive_runs, fail_silent_runs
from streamplane.sensors.scaling import LagCursor, ScalingDecision, ScalingPolicy, decide
from streamplane.sensors.traffic import (
    Traffic,
    dead_letter_observation,
    queued_metadata,
    throughput_metadata,
)

__all__ = ["build_kafka_lag_sensor", "lag_observation", "worker_run_request"]

RAW_EVENTS = AssetKey("raw_events")
# The dead-letter read's share of a tick, well inside the sensor's 60 s beside the lag
# read; what it leaves unread is counted by the next tick.
DLQ_READ_TIMEOUT_S = 10.0


def policy_of(fleet: FleetResource) -> ScalingPolicy:
    """The scaling knobs of the fleet resource."""
    return ScalingPolicy(
        min_workers=fleet.min_workers,
        max_workers=fleet.max_workers,
        lag_per_worker=fleet.lag_per_worker,
        activation_lag=fleet.activation_lag,
        stuck_after_ticks=fleet.stuck_after_ticks,
    )


def worker_run_request(fleet: FleetResource, run_key: str) -> RunRequest:
    """A worker run for the fleet's engine; the run key makes it launch at most once."""
    job = WORKER_JOBS[fleet.worker_engine]
    config = {
        "max_inflight": fleet.worker_max_inflight,
        "engine": fleet.worker_engine,
        "idle_exit_seconds": fleet.worker_idle_exit_s,
    }
    return RunRequest(
        run_key=run_key,
        job_name=job.name,
        run_config={"ops": {"run_worker": {"config": config}}},
    )


def lag_observation(
    topic: str,
    group: str,
    offsets: TopicOffsets,
    decision: ScalingDecision,
    extra: Mapping[str, MetadataValue] | None = None,
) -> AssetObservation:
    """The ``raw_events`` observation of one tick: total and per-partition lag, ``extra``."""
    metadata: dict[str, MetadataValue] = {
        "topic": MetadataValue.text(topic),
        "consumer_group": MetadataValue.text(group),
        "total_lag": MetadataValue.int(decision.total_lag),
        "scaling_lag": MetadataValue.int(decision.effective_lag),
        "end_offset_total": MetadataValue.int(sum(offsets.ends.values())),
        "partitions": MetadataValue.int(len(offsets.lag)),
        "desired_workers": MetadataValue.int(decision.desired),
        "active_workers": MetadataValue.int(decision.active),
        "stuck_partitions": MetadataValue.json(sorted(decision.stuck)),
    }
    for partition, lag in sorted(offsets.lag.items()):
        metadata[f"lag_partition_{partition}"] = MetadataValue.int(lag)
    metadata.update(extra or {})
    return AssetObservation(asset_key=RAW_EVENTS, metadata=metadata)


def evaluate_lag(
    context: SensorEvaluationContext, streamplane: StreamplaneResource, fleet: FleetResource
) -> SensorResult:
    """One tick of the lag sensor (see the module docstring)."""
    for run_id in fail_silent_runs(context.instance, "worker", fleet.heartbeat_timeout_s):
        context.log.warning(f"worker run {run_id} lost its heartbeat; marked failed")
    previous = LagCursor.from_json(context.cursor)
    topic, group = streamplane.input_topic, streamplane.consumer_group
    try:
        offsets = streamplane.kafka.read_group(group, topic)
    except KafkaPlatformError as exc:
        reason = _read_failure(exc, streamplane.kafka.bootstrap_servers, topic)
        context.log.error(reason)
        return SensorResult(skip_reason=reason, cursor=context.cursor)
    active = len(alive_runs(context.instance, "worker"))
    decision = decide(previous, offsets.committed, offsets.lag, active, policy_of(fleet))
    if decision.stuck:
        context.log.warning(
            "stuck partitions: committed offset still while the group advances elsewhere; "
            f"their lag is not scaled on: {decision.summary()}"
        )
    requests = [
        worker_run_request(fleet, previous.run_key(previous.launches + i + 1))
        for i in range(decision.launch)
    ]
    before = Traffic.from_dict(previous.traffic)
    now = Traffic(input_end=sum(offsets.ends.values()), committed=sum(offsets.committed.values()))
    extra = {
        **throughput_metadata(now, before),
        **queued_metadata(_tenant_backlog(streamplane, fleet)),
    }
    events = [lag_observation(topic, group, offsets, decision, extra)]
    dead = _dead_letters(context, streamplane, now, before)
    if dead is not None:
        events.append(dead)
    cursor = dataclasses.replace(decision.cursor, traffic=now.to_dict())
    return SensorResult(
        run_requests=requests,
        skip_reason=None if requests else decision.summary(),
        cursor=cursor.to_json(),
        asset_events=events,
    )


def _tenant_backlog(streamplane: StreamplaneResource, fleet: FleetResource) -> dict[str, int]:
    """Records each tenant has waiting in the supervisors (their /v1/status); best effort."""
    queued: dict[str, int] = {}
    for slot in range(fleet.supervisors):
        listen = streamplane.supervisor_env(slot)["SUPERVISOR_HTTP_LISTEN"]
        try:
            tenants = fetch_json(local_url(listen, "/v1/status")).get("tenants", {})
        except (OSError, ValueError):
            continue  # not running yet, or elsewhere: no per-tenant figure this tick
        for tenant, view in tenants.items():
            queued[tenant] = queued.get(tenant, 0) + int(view.get("queued_records", 0))
    return queued


def _dead_letters(
    context: SensorEvaluationContext,
    streamplane: StreamplaneResource,
    now: Traffic,
    before: Traffic | None,
) -> AssetObservation | None:
    """The tick's ``dead_letters`` observation; None (and a warning) if the DLQ is unreadable.

    The count goes on from the positions in the previous tick's cursor. A failed read
    keeps that count whole: the next tick reads from the same positions.
    """
    topic = streamplane.dead_letter_topic
    kept = before.letters if before is not None else LetterCount()
    now.letters = kept.copy()
    try:
        read = read_new_letters(
            streamplane.kafka.librdkafka_conf(), topic, now.letters, DLQ_READ_TIMEOUT_S
        )
    except KafkaPlatformError as exc:
        context.log.warning(f"dead-letter topic {topic!r} not read this tick: {exc}")
        now.letters = kept
        return None
    if not read.complete:
        context.log.info(
            f"dead-letter topic {topic!r}: {now.letters.unread(read.ends)} letters left "
            "for the next tick (read time spent)"
        )
    return dead_letter_observation(topic, now, before, read.ends, read.newest)


def _read_failure(exc: KafkaPlatformError, bootstrap: str, topic: str) -> str:
    """The tick's one-line reason when the offsets could not be read."""
    if isinstance(exc, KafkaUnavailable):
        what = f"Kafka at {bootstrap} is unreachable"
    else:
        what = f"Kafka at {bootstrap} refused the lag read of topic {topic!r}"
    return f"{what}: {exc}; no scaling this tick (cursor kept)"


def build_kafka_lag_sensor(interval_s: int = 30) -> SensorDefinition:
    """The lag sensor, ticking every ``interval_s`` seconds, on by default."""

    @sensor(
        name="kafka_lag_sensor",
        minimum_interval_seconds=interval_s,
        jobs=[worker_job, gpu_worker_job],
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Reads the supervisor group's lag (admin client) and launches worker runs to "
            "absorb it; reports stuck partitions instead of scaling on them."
        ),
    )
    def kafka_lag_sensor(
        context: SensorEvaluationContext, streamplane: StreamplaneResource, fleet: FleetResource
    ) -> SensorResult:
        return evaluate_lag(context, streamplane, fleet)

    return kafka_lag_sensor
