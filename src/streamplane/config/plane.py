"""The data plane's sections: Kafka, supervisor, worker, mesh, and the process itself."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator

from streamplane.config.base import Section, parse_listen, parse_tenant_domain_map

Ordering = Literal["unordered", "key", "partition"]
Guarantee = Literal["at_least_once", "exactly_once"]
# BATCH_MAX_RECORDS when unset under PROCESSING_GUARANTEE=exactly_once.
EXACTLY_ONCE_BATCH_MAX_RECORDS = 5000
Engine = Literal["polars", "cudf"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

_HOST_PORT = re.compile(r"^[A-Za-z0-9_.\-]+:\d{1,5}$|^\[[0-9A-Fa-f:]+\]:\d{1,5}$")


class KafkaSettings(Section):
    """The cluster, its security settings (an allowlist), the topics and the group."""

    kafka_brokers: str = Field("broker:9092", description="Kafka bootstrap servers, host:port,...")
    input_topic: str = Field("raw.events.demo", min_length=1, description="Topic of raw events")
    output_topic: str = Field("features.events.demo", min_length=1, description="Feature topic")
    dlq_topic: str = Field("", description="Dead-letter topic; default <INPUT_TOPIC>.dlq")
    consumer_group: str = Field(
        "streamplane-supervisor", min_length=1, description="The supervisors' consumer group"
    )
    # Nothing else reaches librdkafka, so no setting can quietly turn certificate checks off.
    kafka_security_protocol: SecurityProtocol = Field("PLAINTEXT", description="security.protocol")
    kafka_sasl_mechanism: SaslMechanism | None = Field(None, description="sasl.mechanism")
    kafka_sasl_username: str | None = Field(None, description="sasl.username")
    kafka_sasl_password: SecretStr | None = Field(None, description="sasl.password")
    kafka_ssl_ca_location: Path | None = Field(None, description="ssl.ca.location")
    kafka_ssl_certificate_location: Path | None = Field(
        None, description="ssl.certificate.location"
    )
    kafka_ssl_key_location: Path | None = Field(None, description="ssl.key.location")
    kafka_ssl_key_password: SecretStr | None = Field(None, description="ssl.key.password")

    @field_validator("kafka_brokers")
    @classmethod
    def _check_brokers(cls, value: str) -> str:
        parts = [p.strip() for p in value.split(",") if p.strip()]
        bad = [p for p in parts if not _HOST_PORT.match(p)]
        if not parts or bad:
            raise ValueError(f"expected host:port[,host:port...], got {value!r}")
        return ",".join(parts)

    @model_validator(mode="before")
    @classmethod
    def _default_dlq(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("dlq_topic"):
            topic = data.get("input_topic") or "raw.events.demo"
            data = {**data, "dlq_topic": f"{topic}.dlq"}
        return data

    def as_librdkafka_dict(self) -> dict[str, str]:
        """The client settings every consumer, producer and admin client shares."""
        conf: dict[str, str] = {
            "bootstrap.servers": self.kafka_brokers,
            "security.protocol": self.kafka_security_protocol,
        }
        optional: dict[str, str | None] = {
            "sasl.mechanism": self.kafka_sasl_mechanism,
            "sasl.username": self.kafka_sasl_username,
            "sasl.password": _reveal(self.kafka_sasl_password),
            "ssl.ca.location": _str_or_none(self.kafka_ssl_ca_location),
            "ssl.certificate.location": _str_or_none(self.kafka_ssl_certificate_location),
            "ssl.key.location": _str_or_none(self.kafka_ssl_key_location),
            "ssl.key.password": _reveal(self.kafka_ssl_key_password),
        }
        conf.update({k: v for k, v in optional.items() if v is not None})
        return conf


class ProcessSettings(Section):
    """What every streamplane process reads: logging and how long a stop may take."""

    log_level: LogLevel = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    drain_timeout_s: float = Field(
        30.0, gt=0, description="How long a stopping process waits for in-flight work"
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class SupervisorSettings(Section):
    """The supervisor: its listeners, batching, backpressure, leases and commits."""

    # gRPC on every interface: workers on other hosts connect to it (put it on a private
    # network). HTTP on loopback: containers and pods set their own (docs/security.md).
    supervisor_listen: str = Field(":7000", description="gRPC listen address of the supervisor")
    supervisor_http_listen: str = Field(
        "127.0.0.1:8080", description="HTTP listen address (loopback unless set)"
    )
    max_attempts: int = Field(5, ge=1, le=100, description="Attempts before a record goes to DLQ")
    ordering: Ordering = Field("unordered", description="unordered, key or partition")
    # docs/exactly-once.md: outputs, dead letters and input offsets commit in one Kafka
    # transaction per group of tasks; exactly_once implies ORDERING=partition.
    processing_guarantee: Guarantee = Field(
        "at_least_once", description="at_least_once or exactly_once (read_committed readers)"
    )
    transaction_timeout_ms: int = Field(
        30_000,
        ge=1_000,
        le=900_000,
        description="exactly_once: how long a dead worker's open transaction holds readers",
    )
    # A task's size only matters under load: with a worker's credit idle, batches close
    # by linger, small. Under load, 2,000 records of ~200 B (under BATCH_MAX_BYTES, in one
    # 4 MiB gRPC message) spread each task's fixed costs (the gRPC message, a polars
    # frame, an ack; under exactly_once a transaction, whose commit markers cost the broker
    # per task) over 4x the records of the old 500: `streamplane bench`, 300k events,
    # 2 cores, broker CPU per record under exactly_once 17-19 us -> 6.2 us,
    # ratio_eos_to_alo 0.60 -> 0.93, with lost 0.
    # Under exactly_once each task is (at least) one transaction, and the broker's cost
    # per transaction (markers on every partition written, the offset commit) outweighs
    # the rest: unset, tasks there may grow to EXACTLY_ONCE_BATCH_MAX_RECORDS, where
    # BATCH_MAX_BYTES usually binds first (~3,500 demo events). docs/performance.md.
    batch_max_records: int = Field(
        2000, ge=1, le=100_000, description="Records per task (unset: 5000 under exactly_once)"
    )
    batch_max_bytes: int = Field(
        1_048_576, ge=1024, le=64 * 1024 * 1024, description="Bytes per task"
    )
    batch_linger_ms: float = Field(5.0, ge=0, le=10_000, description="Longest a batch waits")
    # While every worker is busy, lingering batches wait for credit so that tasks grow;
    # past this age one closes anyway, so a rare tenant's records (holding their
    # partition's lowest outstanding offset) never wait out a whole backlog. A quarter
    # second still lets a busy (tenant, partition) fill a 500-record task at ~2k/s.
    batch_max_age_ms: float = Field(
        250.0, gt=0, le=60_000, description="Oldest a batch gets, credit or not"
    )
    # Backpressure: pause fetching above the high mark, resume below the low mark.
    # 100,000 pending records are a second of work at the pipeline's rate, so the workers
    # never run dry; 200,000 only held more in memory: `streamplane bench`, 1M events,
    # supervisor peak RSS 296 MB -> 251-259 MB at the same ratio (docs/performance.md).
    max_pending_records: int = Field(
        100_000, ge=1, description="Consumed, unfinished records above which fetching pauses"
    )
    resume_pending_records: int | None = Field(
        None, ge=0, description="Pending records below which fetching resumes (default: half)"
    )
    lease_timeout_s: float = Field(60.0, gt=0, description="A task not acked by then is requeued")
    retry_backoff_ms: float = Field(200.0, ge=0, description="First RETRY backoff (doubles)")
    commit_interval_ms: float = Field(500.0, gt=0, description="Offset commit cadence")
    supervisor_ready_file: Path | None = Field(
        None, description="File the supervisor writes its ports and pid to (JSON) once ready"
    )

    @field_validator("supervisor_listen", "supervisor_http_listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @model_validator(mode="after")
    def _check_marks(self) -> SupervisorSettings:
        low = self.resume_pending_records
        if low is not None and low >= self.max_pending_records:
            raise ValueError("RESUME_PENDING_RECORDS must be below MAX_PENDING_RECORDS")
        return self

    @model_validator(mode="after")
    def _lanes_for_exactly_once(self) -> SupervisorSettings:
        # A transaction commits one offset per partition, so a partition's tasks must
        # finish in order: one at a time, which is what partition lanes do.
        # ORDERING=unordered (the default, and env.template's value) is taken as
        # partition; key lanes would split a partition, so they are refused.
        if self.exactly_once and self.ordering != "partition":
            if self.ordering == "key":
                raise ValueError(
                    "ORDERING=key cannot be kept with PROCESSING_GUARANTEE=exactly_once "
                    "(it implies partition order); set ORDERING=partition or leave it unset"
                )
            object.__setattr__(self, "ordering", "partition")  # the section is frozen
        return self

    @model_validator(mode="after")
    def _task_size_for_exactly_once(self) -> SupervisorSettings:
        if self.exactly_once and "batch_max_records" not in self.model_fields_set:
            object.__setattr__(self, "batch_max_records", EXACTLY_ONCE_BATCH_MAX_RECORDS)
        return self

    @property
    def exactly_once(self) -> bool:
        """Whether outputs and offsets commit in transactions."""
        return self.processing_guarantee == "exactly_once"

    @property
    def resume_mark(self) -> int:
        """Pending-record count below which paused partitions resume."""
        if self.resume_pending_records is not None:
            return self.resume_pending_records
        return self.max_pending_records // 2


class WorkerSettings(Section):
    """A worker: whom it dials, how much it holds, what it computes."""

    supervisor_grpc_addr: str = Field("supervisor:7000", description="Supervisor a worker dials")
    max_inflight: int = Field(4, ge=1, le=1024, description="Tasks a worker holds unacked")
    worker_id: str | None = Field(None, description="Worker id; default host-pid")
    worker_engine: Engine = Field("polars", description="Feature engine: polars or cudf")
    worker_processor: str = Field(
        "features", description="A registered processor, or module:factory"
    )
    worker_idle_exit_s: float | None = Field(None, gt=0, description="Exit after idle seconds")
    reconnect_max_backoff_s: float = Field(10.0, gt=0, description="Longest reconnect backoff")
    worker_metrics_listen: str | None = Field(
        None,
        description=(
            "[HOST]:PORT of the worker's own /metrics (dead letters by tenant and kind); "
            "unset: not served (Dagster worker runs pick a free loopback port)"
        ),
    )

    @field_validator("worker_metrics_listen")
    @classmethod
    def _check_metrics_listen(cls, value: str | None) -> str | None:
        if value:
            parse_listen(value)
        return value


class MeshSettings(Section):
    """The MeshData transport: a worker's node, the supervisor's publishing, mesh nodes."""

    mesh_endpoint: str | None = Field(None, description="Mesh node a worker subscribes to")
    mesh_node_id: str | None = Field(
        None, description="This process's mesh node id", json_schema_extra={"flags": ["--node-id"]}
    )
    mesh_domain: str = Field("default", description="Mesh domain a worker serves")
    mesh_worker_endpoint: str = Field("http://mesh-worker:50052", description="Worker mesh node")
    mesh_services_file: Path | None = Field(
        None,
        description="JSON manifest of mesh nodes (default: the packaged hub/worker/trainer one)",
        json_schema_extra={"flags": ["--services"]},
    )
    mesh_publish_endpoint: str | None = Field(None, description="Mesh node the supervisor uses")
    mesh_source_node: str | None = Field(None, description="Supervisor's mesh node id")
    mesh_publish_domain: str | None = Field(None, description="Default domain for publishes")
    mesh_tenant_domain_map: str | None = Field(
        None,
        description="tenant=domain,... pins",
        json_schema_extra={"flags": ["--tenant-domain-map"]},
    )

    @field_validator("mesh_tenant_domain_map")
    @classmethod
    def _check_tenant_map(cls, value: str | None) -> str | None:
        if value:
            parse_tenant_domain_map(value)
        return value


class MeshNodeSettings(Section):
    """A MeshData node's own listeners and queue bound (``streamplane mesh-node``)."""

    mesh_node_listen: str | None = Field(
        None,
        description="gRPC listen address [HOST]:PORT (default: the port of the node's endpoint)",
        json_schema_extra={"flags": ["--listen"]},
    )
    mesh_node_queue_capacity: int = Field(
        256,
        ge=1,
        le=1_000_000,
        description="Envelopes each subscriber queue holds before publishes get RESOURCE_EXHAUSTED",
        json_schema_extra={"flags": ["--queue-capacity"]},
    )
    mesh_node_metrics_listen: str | None = Field(
        None,
        description="HTTP address for /metrics, [HOST]:PORT (default: none)",
        json_schema_extra={"flags": ["--metrics-listen"]},
    )


_TOKEN = re.compile(r"^[\x21-\x7e]{16,512}$")


class RpcSecuritySettings(Section):
    """Who may use the gRPC ports (Runner and MeshData): a bearer token, TLS, mutual TLS.

    One identity per process: the certificate is the server's where it serves and the
    client's where it dials; the CA verifies the peer (and, on a server, makes client
    certificates required). docs/security.md shows a production setup.
    """

    grpc_auth_token: SecretStr | None = Field(
        None,
        description=(
            "Shared bearer token (16-512 printable characters) every gRPC client sends "
            "and every gRPC server requires (health checks excepted); unset: none"
        ),
    )
    grpc_tls_cert_file: FilePath | None = Field(
        None, description="PEM certificate of this process (server, or client under mTLS)"
    )
    grpc_tls_key_file: FilePath | None = Field(
        None, description="PEM private key of GRPC_TLS_CERT_FILE"
    )
    grpc_tls_ca_file: FilePath | None = Field(
        None,
        description=(
            "PEM CA bundle that verifies the peer; a client with it dials TLS, a server "
            "with it requires client certificates (mutual TLS)"
        ),
    )

    @field_validator("grpc_auth_token")
    @classmethod
    def _check_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _TOKEN.match(value.get_secret_value()):
            # Never quote the value: it is a secret, however malformed.
            raise ValueError("expected 16 to 512 printable ASCII characters without spaces")
        return value

    @model_validator(mode="after")
    def _cert_with_key(self) -> RpcSecuritySettings:
        if (self.grpc_tls_cert_file is None) != (self.grpc_tls_key_file is None):
            missing = (
                "GRPC_TLS_KEY_FILE" if self.grpc_tls_key_file is None else "GRPC_TLS_CERT_FILE"
            )
            raise ValueError(f"{missing} is not set: a certificate and its key go together")
        return self


def _reveal(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _str_or_none(value: Path | None) -> str | None:
    return str(value) if value is not None else None
