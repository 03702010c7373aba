"""streamplane's Dagster ``Definitions``: what ``workspace.yaml`` loads.

Jobs run the runtime (supervisor, CPU and GPU workers, the feature snapshot), sensors
scale workers on Kafka lag and keep supervisors alive, assets show the lineage
``raw_events -> feature_events -> feature_snapshot``. Everything deployment-specific
comes from the environment: the runtime's variables (``KAFKA_BROKERS``, ``INPUT_TOPIC``,
...) and the Dagster face's ``STREAMPLANE_*`` ones (see ``resources.FaceSettings`` and
docs/dagster.md).
"""

from __future__ import annotations

from dagster import DefaultScheduleStatus, Definitions, ScheduleDefinition

from streamplane.assets import (
    feature_backfill,
    feature_events_dlq_rate,
    feature_snapshot,
    feature_snapshot_no_nulls,
    topic_specs,
)
from streamplane.assets.rl import (
    RL_ASSET_CHECKS,
    RL_ASSETS,
    RL_JOBS,
    rl_resources_from_environment,
)
from streamplane.config import load_settings
from streamplane.jobs import feature_snapshot_job, gpu_worker_job, supervisor_job, worker_job
from streamplane.resources import resources_from_environment
from streamplane.sensors.kafka_lag import build_kafka_lag_sensor
from streamplane.sensors.liveness import build_supervisor_liveness_sensor
from streamplane.sensors.rl import RL_SCHEDULES, RL_SENSORS

__all__ = ["build_definitions", "defs"]


def build_definitions() -> Definitions:
    """Build the definitions from the current environment."""
    face = load_settings().face
    resources = {**resources_from_environment(face), **rl_resources_from_environment()}
    streamplane = resources["streamplane"]
    specs = topic_specs(
        streamplane.input_topic,  # type: ignore[attr-defined]
        streamplane.output_topic,  # type: ignore[attr-defined]
        streamplane.dead_letter_topic,  # type: ignore[attr-defined]
    )
    snapshot_schedule = ScheduleDefinition(
        name="feature_snapshot_schedule",
        job=feature_snapshot_job,
        cron_schedule=face.snapshot_cron,
        default_status=DefaultScheduleStatus.RUNNING,
        description="Materializes feature_snapshot and runs its checks.",
    )
    return Definitions(
        assets=[*specs, feature_snapshot, feature_backfill, *RL_ASSETS],
        asset_checks=[feature_snapshot_no_nulls, feature_events_dlq_rate, *RL_ASSET_CHECKS],
        jobs=[supervisor_job, worker_job, gpu_worker_job, feature_snapshot_job, *RL_JOBS],
        sensors=[
            build_kafka_lag_sensor(face.lag_sensor_interval_s),
            build_supervisor_liveness_sensor(face.liveness_sensor_interval_s),
            *RL_SENSORS,
        ],
        schedules=[snapshot_schedule, *RL_SCHEDULES],
        resources=resources,
    )


defs = build_definitions()
