"""Dagster resources: Kafka, the streamplane settings, the worker fleet and the snapshot.

Each resource is a ``ConfigurableResource`` with described fields, so the UI's resource
page documents them. They translate into the runtime's own configuration (the
:class:`~streamplane.config.Settings` allowlist for Kafka clients, and the environment
variables a ``streamplane supervisor`` or ``streamplane worker`` process reads); the
runtime never sees Dagster. :func:`resources_from_environment` builds the deployed
resources from the environment, secrets as ``EnvVar`` so their values never show in the
UI or in stored run config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from streamplane.config import (
    FaceSettings,
    KafkaSettings,
    ProcessSettings,
    Settings,
    SupervisorSettings,
    WorkerSettings,
    field_like,
    load_settings,
    parse_listen,
)
from streamplane.platform.kafka import admin
from streamplane.platform.kafka.group_offsets import TopicOffsets, read_group_offsets

__all__ = [
    "FleetResource",
    "KafkaResource",
    "SnapshotResource",
    "StreamplaneResource",
    "resources_from_environment",
]

# Kafka settings passed through to librdkafka, by resource field -> Settings field. The
# Settings allowlist is the only way in, so no field can turn certificate checks off.
_KAFKA_FIELDS = {
    "bootstrap_servers": "kafka_brokers",
    "security_protocol": "kafka_security_protocol",
    "sasl_mechanism": "kafka_sasl_mechanism",
    "sasl_username": "kafka_sasl_username",
    "sasl_password": "kafka_sasl_password",
    "ssl_ca_location": "kafka_ssl_ca_location",
    "ssl_certificate_location": "kafka_ssl_certificate_location",
    "ssl_key_location": "kafka_ssl_key_location",
    "ssl_key_password": "kafka_ssl_key_password",
}
_SECRET_FIELDS = ("sasl_password", "ssl_key_password")


class KafkaResource(ConfigurableResource):  # type: ignore[type-arg]
    """How to reach the Kafka cluster; the only settings passed to librdkafka."""

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Bootstrap servers, host:port[,host:port...]."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="librdkafka security.protocol."
    )
    sasl_mechanism: str | None = Field(
        default=None, description="SASL mechanism: PLAIN, SCRAM-SHA-256/512 or OAUTHBEARER."
    )
    sasl_username: str | None = Field(default=None, description="SASL user name.")
    sasl_password: str | None = Field(
        default=None, description="SASL password; set it with EnvVar('KAFKA_SASL_PASSWORD')."
    )
    ssl_ca_location: str | None = Field(default=None, description="CA bundle file for TLS.")
    ssl_certificate_location: str | None = Field(
        default=None, description="Client certificate file for mutual TLS."
    )
    ssl_key_location: str | None = Field(default=None, description="Client key file for mTLS.")
    ssl_key_password: str | None = Field(
        default=None,
        description="Client key password; set it with EnvVar('KAFKA_SSL_KEY_PASSWORD').",
    )
    request_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Budget in seconds for one admin read (all its requests together); well under the "
            "60 s sensor evaluation timeout, so an unreachable broker fails the read, not the tick."
        ),
    )

    def settings_overrides(self) -> dict[str, Any]:
        """These fields as :class:`Settings` field values (unset ones left out)."""
        values = {name: getattr(self, name) for name in _KAFKA_FIELDS}
        return {_KAFKA_FIELDS[k]: v for k, v in values.items() if v is not None}

    def librdkafka_conf(self) -> dict[str, str]:
        """The client configuration, built through the Settings allowlist."""
        return load_settings(**self.settings_overrides()).kafka.as_librdkafka_dict()

    def process_env(self) -> dict[str, str]:
        """The ``KAFKA_*`` variables a streamplane process reads these settings from."""
        return {k.upper(): str(v) for k, v in self.settings_overrides().items()}

    def read_group(self, group: str, topic: str) -> TopicOffsets:
        """End offsets, committed offsets and lag of ``group`` on ``topic``, by partition.

        Admin requests only (no consumer joins or polls), in a child process bounded by
        ``request_timeout_s`` (see :mod:`streamplane.platform.kafka.group_offsets` for why).

        Raises:
            KafkaUnavailable: the cluster did not answer in time (or the reader crashed).
            KafkaAdminError: the topic does not exist, or a request was refused.
        """
        return read_group_offsets(self.librdkafka_conf(), group, topic, self.request_timeout_s)

    def end_offsets(self, topic: str) -> dict[int, int]:
        """High watermark of each partition of ``topic`` (admin request, bounded)."""
        return admin.end_offsets(self.librdkafka_conf(), topic, timeout=self.request_timeout_s)


class StreamplaneResource(ConfigurableResource):  # type: ignore[type-arg]
    """The streamplane deployment: topics, group and the supervisor's addresses."""

    kafka: KafkaResource = Field(description="The Kafka cluster.")
    input_topic: str = field_like(KafkaSettings, "input_topic")
    output_topic: str = field_like(KafkaSettings, "output_topic")
    dlq_topic: str = field_like(KafkaSettings, "dlq_topic")
    consumer_group: str = field_like(KafkaSettings, "consumer_group")
    supervisor_listen: str = field_like(
        SupervisorSettings, "supervisor_listen", "gRPC listen address of supervisor slot 0."
    )
    supervisor_http_listen: str = field_like(
        SupervisorSettings, "supervisor_http_listen", "HTTP listen address of slot 0."
    )
    supervisor_port_stride: int = Field(
        default=0,
        ge=0,
        description=(
            "Added to both listen ports per supervisor slot, for several supervisors on one "
            "host; 0 where each run has its own network namespace (a Kubernetes pod)."
        ),
    )
    supervisor_grpc_addr: str = Field(
        default="127.0.0.1:7000",
        description="Where workers dial a supervisor (a Kubernetes Service in a cluster).",
    )
    drain_timeout_s: float = field_like(ProcessSettings, "drain_timeout_s")

    @property
    def dead_letter_topic(self) -> str:
        """The dead-letter topic, defaulted like the runtime defaults it."""
        return self.dlq_topic or f"{self.input_topic}.dlq"

    def settings(self) -> Settings:
        """The runtime's settings object for these values (validated, errors name variables)."""
        return load_settings(**self.kafka.settings_overrides(), **self._topic_overrides())

    def supervisor_env(self, slot: int) -> dict[str, str]:
        """Variables for ``streamplane supervisor`` in supervisor slot ``slot``."""
        offset = slot * self.supervisor_port_stride
        return {
            **self.kafka.process_env(),
            **{k.upper(): v for k, v in self._topic_overrides().items()},
            "CONSUMER_GROUP": self.consumer_group,
            "SUPERVISOR_LISTEN": _shift_port(self.supervisor_listen, offset),
            "SUPERVISOR_HTTP_LISTEN": _shift_port(self.supervisor_http_listen, offset),
            "DRAIN_TIMEOUT_S": str(self.drain_timeout_s),
        }

    def worker_env(self) -> dict[str, str]:
        """Variables for ``streamplane worker`` (the run's config adds the rest)."""
        return {
            **self.kafka.process_env(),
            "OUTPUT_TOPIC": self.output_topic,
            "DLQ_TOPIC": self.dead_letter_topic,
            "SUPERVISOR_GRPC_ADDR": self.supervisor_grpc_addr,
            "DRAIN_TIMEOUT_S": str(self.drain_timeout_s),
        }

    def _topic_overrides(self) -> dict[str, str]:
        return {
            "input_topic": self.input_topic,
            "output_topic": self.output_topic,
            "dlq_topic": self.dead_letter_topic,
        }


class FleetResource(ConfigurableResource):  # type: ignore[type-arg]
    """How many supervisors and workers the sensors keep, and how workers scale on lag."""

    supervisors: int = field_like(FaceSettings, "supervisors")
    min_workers: int = field_like(FaceSettings, "min_workers")
    max_workers: int = field_like(FaceSettings, "max_workers")
    lag_per_worker: int = field_like(FaceSettings, "lag_per_worker")
    activation_lag: int = field_like(
        FaceSettings,
        "activation_lag",
        "Lag at or below which no worker beyond min_workers is started.",
    )
    stuck_after_ticks: int = Field(
        default=3,
        ge=1,
        description=(
            "Consecutive ticks a lagging partition's committed offset must stand still while "
            "other partitions advance before it is reported stuck and left out of scaling."
        ),
    )
    worker_engine: Literal["polars", "cudf"] = field_like(
        WorkerSettings, "worker_engine", "Engine of sensor-launched workers (cudf: GPU job)."
    )
    worker_max_inflight: int = field_like(
        WorkerSettings, "max_inflight", "MAX_INFLIGHT of sensor-launched workers."
    )
    worker_idle_exit_s: float = field_like(FaceSettings, "fleet_idle_exit_s")
    heartbeat_timeout_s: float = field_like(
        FaceSettings,
        "heartbeat_timeout_s",
        (
            "A started supervisor or worker run whose heartbeat is older than this is marked "
            "failed (its run worker died) and replaced."
        ),
    )


class SnapshotResource(ConfigurableResource):  # type: ignore[type-arg]
    """Where the feature snapshot goes, how big it is, and the data-quality thresholds."""

    directory: str = Field(
        default=".data/snapshots", description="Folder of feature_snapshot.parquet."
    )
    records: int = Field(default=10_000, ge=1, description="Latest feature records to keep.")
    read_timeout_s: float = Field(
        default=30.0, gt=0, description="Most seconds spent reading OUTPUT_TOPIC."
    )
    max_dlq_rate: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Dead-lettered records per input record above which the DLQ check fails.",
    )

    @property
    def path(self) -> Path:
        """The snapshot's Parquet file."""
        return Path(self.directory) / "feature_snapshot.parquet"


def _shift_port(listen: str, offset: int) -> str:
    """``listen`` with its port moved up by ``offset`` (port 0 stays 0: pick a free one)."""
    if offset == 0:
        return listen
    host, port = parse_listen(listen)
    host = "" if listen.startswith(":") else host
    return f"{host}:{port + offset if port else 0}"


def _kafka_from_settings(settings: Settings) -> KafkaResource:
    """A KafkaResource from the runtime settings; secrets as EnvVar, never as values."""
    values: dict[str, Any] = {}
    for field, setting in _KAFKA_FIELDS.items():
        value = getattr(settings.kafka, setting)
        if value is None:
            continue
        values[field] = EnvVar(setting.upper()) if field in _SECRET_FIELDS else str(value)
    return KafkaResource(**values)


def resources_from_environment(
    face: FaceSettings | None = None,
) -> dict[str, ConfigurableResource]:  # type: ignore[type-arg]
    """The deployed resources, from the runtime's settings and the face's variables.

    Runtime variables (``KAFKA_BROKERS``, ``INPUT_TOPIC``, ...) are read through
    :func:`streamplane.config.load_settings`, the one place that reads them; the
    ``STREAMPLANE_*`` ones through :class:`FaceSettings`.
    """
    settings = load_settings()
    face = face or settings.face
    kafka = _kafka_from_settings(settings)
    streamplane = StreamplaneResource(
        kafka=kafka,
        input_topic=settings.kafka.input_topic,
        output_topic=settings.kafka.output_topic,
        dlq_topic=settings.kafka.dlq_topic,
        consumer_group=settings.kafka.consumer_group,
        supervisor_listen=settings.supervisor.supervisor_listen,
        supervisor_http_listen=settings.supervisor.supervisor_http_listen,
        supervisor_port_stride=face.supervisor_port_stride,
        supervisor_grpc_addr=settings.worker.supervisor_grpc_addr,
        drain_timeout_s=settings.process.drain_timeout_s,
    )
    fleet = FleetResource(
        supervisors=face.supervisors,
        min_workers=face.min_workers,
        max_workers=face.max_workers,
        lag_per_worker=face.lag_per_worker,
        activation_lag=face.activation_lag,
        worker_engine=settings.worker.worker_engine,
        worker_max_inflight=settings.worker.max_inflight,
        worker_idle_exit_s=face.fleet_idle_exit_s,
        heartbeat_timeout_s=face.heartbeat_timeout_s,
    )
    snapshot = SnapshotResource(directory=str(face.snapshot_dir), records=face.snapshot_records)
    return {"kafka": kafka, "streamplane": streamplane, "fleet": fleet, "snapshot": snapshot}
