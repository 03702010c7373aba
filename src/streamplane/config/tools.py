"""Sections of the Dagster face and of the development tools (``STREAMPLANE_*``, demo, bench)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from streamplane.config.base import Section
from streamplane.config.plane import Guarantee


class FaceSettings(Section):
    """The Dagster face's own variables (``STREAMPLANE_*``): fleet size, scaling, snapshot."""

    model_config = SettingsConfigDict(env_prefix="STREAMPLANE_")

    supervisors: int = Field(default=1, ge=0, description="Supervisor runs kept alive")
    min_workers: int = Field(default=0, ge=0, description="Worker runs kept without lag")
    max_workers: int = Field(default=4, ge=0, description="Most worker runs at once")
    lag_per_worker: int = Field(default=20_000, ge=1, description="Lag one worker absorbs")
    activation_lag: int = Field(default=0, ge=0, description="Lag that starts scaling")
    fleet_idle_exit_s: float = Field(
        default=60.0,
        gt=0,
        validation_alias="STREAMPLANE_WORKER_IDLE_EXIT_S",
        description="A sensor-launched worker exits after this idle time",
    )
    heartbeat_timeout_s: float = Field(default=60.0, gt=0, description="Run heartbeat timeout")
    supervisor_port_stride: int = Field(default=0, ge=0, description="Port step per slot")
    snapshot_dir: Path = Field(default=Path(".data/snapshots"), description="Snapshot folder")
    snapshot_records: int = Field(default=10_000, ge=1, description="Snapshot size")
    snapshot_cron: str = Field(default="*/5 * * * *", description="Snapshot schedule")
    lag_sensor_interval_s: int = Field(default=30, ge=1, description="Lag sensor interval")
    liveness_sensor_interval_s: int = Field(default=30, ge=1, description="Liveness interval")


class BrokerSettings(Section):
    """``streamplane broker``: the embedded development Kafka."""

    model_config = SettingsConfigDict(env_prefix="STREAMPLANE_")

    broker_data_dir: Path = Field(
        Path(".data/broker"),
        description="Folder for the broker's log and metadata",
        json_schema_extra={"flags": ["--data-dir"]},
    )
    broker_port: int = Field(
        9092,
        ge=0,
        le=65535,
        description="Listener port (0 picks a free one)",
        json_schema_extra={"flags": ["--port"]},
    )


class ProduceSettings(Section):
    """``streamplane produce``: demo events or RL rollout requests."""

    flag_prefix: ClassVar[str] = "produce_"

    produce_count: int | None = Field(
        None, ge=0, description="Events to write (default: until interrupted)"
    )
    produce_rate: float | None = Field(
        None, gt=0, description="Events per second (default: as fast as possible)"
    )
    produce_tenants: int = Field(3, ge=1, description="Distinct tenants")
    produce_users: int = Field(1000, ge=1, description="Distinct user ids (record keys)")
    produce_bad_fraction: float = Field(0.0, ge=0, le=1, description="Share of malformed events")
    produce_partitions: int = Field(6, ge=1, description="Partitions if the topic must be created")
    produce_seed: int = Field(7, description="Random seed of the demo events")
    produce_rollouts: int | None = Field(
        None, ge=1, description="Write N RL rollout requests instead of demo events"
    )
    produce_skill: str = Field("default", description="Skill of the rollout requests")


class DevSettings(Section):
    """``streamplane dev``: broker, supervisor, workers and a producer in one process tree.

    Its producer reads PRODUCE_RATE and PRODUCE_BAD_FRACTION like ``streamplane produce``,
    with demo defaults (a steady trickle with some bad records to see in the DLQ).
    """

    model_config = SettingsConfigDict(env_prefix="STREAMPLANE_DEV_")

    dev_data_dir: Path = Field(
        Path(".data/dev"),
        validation_alias="STREAMPLANE_DEV_DATA_DIR",
        description="Folder of the broker and the logs",
        json_schema_extra={"flags": ["--data-dir"]},
    )
    dev_workers: int = Field(
        2,
        ge=0,
        validation_alias="STREAMPLANE_DEV_WORKERS",
        description="Workers to start",
        json_schema_extra={"flags": ["--workers"]},
    )
    dev_rate: float = Field(
        200.0,
        gt=0,
        validation_alias="PRODUCE_RATE",
        description="Demo events per second",
        json_schema_extra={"flags": ["--rate"]},
    )
    dev_bad_fraction: float = Field(
        0.01,
        ge=0,
        le=1,
        validation_alias="PRODUCE_BAD_FRACTION",
        description="Share of malformed demo events",
        json_schema_extra={"flags": ["--bad-fraction"]},
    )
    # Bursts make the lag sensor's scaling visible: 150k events as fast as the producer
    # goes are far more than one worker absorbs in a 10 s tick on a laptop, so the lag
    # asks for several workers; between bursts they go idle and exit.
    dev_burst_records: int = Field(
        150_000,
        ge=0,
        validation_alias="STREAMPLANE_DEV_BURST_RECORDS",
        description="Events of each demo burst, on top of the steady rate (0: no bursts)",
        json_schema_extra={"flags": ["--burst-records"]},
    )
    dev_burst_interval_s: float = Field(
        150.0,
        gt=0,
        validation_alias="STREAMPLANE_DEV_BURST_INTERVAL_S",
        description="Seconds between demo bursts (the first comes after a third of it)",
        json_schema_extra={"flags": ["--burst-interval"]},
    )


class DeadLetterSettings(Section):
    """``streamplane dlq tail``: read dead letters back with their ``sp-error`` headers."""

    flag_prefix: ClassVar[str] = "dlq_"

    dlq_count: int = Field(20, ge=1, description="Dead letters to print (the latest)")
    dlq_timeout_s: float = Field(30.0, gt=0, description="Most seconds spent reading DLQ_TOPIC")


class BenchSettings(Section):
    """``streamplane bench``: passthrough vs pipeline figures as one JSON line."""

    flag_prefix: ClassVar[str] = "bench_"

    bench_count: int = Field(1_000_000, ge=1000, description="Events in the input topic")
    bench_partitions: int = Field(6, ge=1, description="Partitions of the input topic")
    bench_data_dir: Path | None = Field(
        None, description="Broker folder when the bench starts its own (default: a temp dir)"
    )
    bench_transport: Literal["grpc", "mesh"] = Field(
        "grpc",
        description="mesh: also run the pipeline with tasks through MeshData nodes, and its ratio",
    )
    bench_guarantee: Guarantee = Field(
        "at_least_once",
        description=(
            "exactly_once: also run the one-worker pipeline and a latency run with "
            "PROCESSING_GUARANTEE=exactly_once (ratio_eos_to_alo, read_committed visibility)"
        ),
    )
