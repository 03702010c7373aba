"""The one settings object, read from the environment and docker/streaming/.env.

Every variable of the seed keeps its name and default; every CLI flag maps to one field
here (see `cli.py`). Bad values fail at start with a `ConfigError` naming the variable.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamplane.exceptions import ConfigError

ENV_FILE = Path("docker/streaming/.env")

Ordering = Literal["unordered", "key", "partition"]
Engine = Literal["polars", "cudf"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]

_HOST_PORT = re.compile(r"^[A-Za-z0-9_.\-]+:\d{1,5}$|^\[[0-9A-Fa-f:]+\]:\d{1,5}$")


def parse_listen(value: str) -> tuple[str, int]:
    """Split a listen address like ':7000' or '127.0.0.1:0' into host and port."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected [HOST]:PORT, got {value!r}")
    return (host or "0.0.0.0", int(port))


class Settings(BaseSettings):
    """All of streamplane's configuration; field names are the variables, lower-cased."""

    model_config = SettingsConfigDict(
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        case_sensitive=False,
    )

    # --- the seed's variables -------------------------------------------------------
    kafka_brokers: str = Field("broker:9092", description="Kafka bootstrap servers, host:port,...")
    input_topic: str = Field("raw.events.demo", min_length=1, description="Topic of raw events")
    output_topic: str = Field("features.events.demo", min_length=1, description="Feature topic")
    supervisor_listen: str = Field(":7000", description="gRPC listen address of the supervisor")
    supervisor_grpc_addr: str = Field("supervisor:7000", description="Supervisor a worker dials")
    max_inflight: int = Field(4, ge=1, le=1024, description="Tasks a worker holds unacked")
    mesh_endpoint: str | None = Field(None, description="Mesh node a worker subscribes to")
    mesh_node_id: str | None = Field(None, description="This process's mesh node id")
    mesh_domain: str = Field("default", description="Mesh domain a worker serves")
    mesh_worker_endpoint: str = Field("http://mesh-worker:50052", description="Worker mesh node")
    mesh_services_file: Path | None = Field(None, description="JSON manifest of mesh nodes")
    mesh_publish_endpoint: str | None = Field(None, description="Mesh node the supervisor uses")
    mesh_source_node: str | None = Field(None, description="Supervisor's mesh node id")
    mesh_publish_domain: str | None = Field(None, description="Default domain for publishes")
    mesh_tenant_domain_map: str | None = Field(None, description="tenant=domain,... pins")
    rl_results_topic: str | None = Field(None, description="Topic of RL transitions")
    rl_buffer_dir: Path | None = Field(None, description="Folder of the RL replay buffer")

    # --- streamplane's own ------------------------------------------------------------
    consumer_group: str = Field("streamplane-supervisor", min_length=1)
    dlq_topic: str = Field("", description="Dead-letter topic; default <INPUT_TOPIC>.dlq")
    max_attempts: int = Field(5, ge=1, le=100, description="Attempts before a record goes to DLQ")
    ordering: Ordering = Field("unordered", description="unordered, key or partition")
    supervisor_http_listen: str = Field(":8080", description="HTTP listen address")

    # Tasks: 500 records of ~200 B keep the ~150 us per-message gRPC cost under 1 us per
    # record while a task still fits comfortably in one 4 MiB gRPC message.
    batch_max_records: int = Field(500, ge=1, le=100_000)
    batch_max_bytes: int = Field(1_048_576, ge=1024, le=64 * 1024 * 1024)
    batch_linger_ms: float = Field(5.0, ge=0, le=10_000)
    # Backpressure: pause fetching above the high mark, resume below the low mark.
    max_pending_records: int = Field(200_000, ge=1)
    resume_pending_records: int | None = Field(None, ge=0)
    lease_timeout_s: float = Field(60.0, gt=0, description="A task not acked by then is requeued")
    retry_backoff_ms: float = Field(200.0, ge=0, description="First RETRY backoff (doubles)")
    commit_interval_ms: float = Field(500.0, gt=0)
    drain_timeout_s: float = Field(30.0, gt=0)

    worker_id: str | None = Field(None, description="Worker id; default host-pid")
    worker_engine: Engine = Field("polars", description="Feature engine: polars or cudf")
    worker_processor: str = Field("features", description="features, or module:factory")
    worker_idle_exit_s: float | None = Field(None, gt=0, description="Exit after idle seconds")
    reconnect_max_backoff_s: float = Field(10.0, gt=0)

    # --- Kafka security: an allowlist, nothing else reaches librdkafka ----------------
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: Path | None = None
    kafka_ssl_certificate_location: Path | None = None
    kafka_ssl_key_location: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None

    @field_validator("kafka_brokers")
    @classmethod
    def _check_brokers(cls, value: str) -> str:
        parts = [p.strip() for p in value.split(",") if p.strip()]
        bad = [p for p in parts if not _HOST_PORT.match(p)]
        if not parts or bad:
            raise ValueError(f"expected host:port[,host:port...], got {value!r}")
        return ",".join(parts)

    @field_validator("supervisor_listen", "supervisor_http_listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("mesh_tenant_domain_map")
    @classmethod
    def _check_tenant_map(cls, value: str | None) -> str | None:
        if value:
            parse_tenant_domain_map(value)
        return value

    @model_validator(mode="before")
    @classmethod
    def _default_dlq(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("dlq_topic"):
            topic = data.get("input_topic") or "raw.events.demo"
            data = {**data, "dlq_topic": f"{topic}.dlq"}
        return data

    @model_validator(mode="after")
    def _check_marks(self) -> Settings:
        low = self.resume_pending_records
        if low is not None and low >= self.max_pending_records:
            raise ValueError("RESUME_PENDING_RECORDS must be below MAX_PENDING_RECORDS")
        return self

    @property
    def resume_mark(self) -> int:
        """Pending-record count below which paused partitions resume."""
        if self.resume_pending_records is not None:
            return self.resume_pending_records
        return self.max_pending_records // 2

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

    def redacted(self) -> dict[str, Any]:
        """Settings as a dict that is safe to print or log (SecretStr shows as ****)."""
        return {k: ("**********" if isinstance(v, SecretStr) else v) for k, v in self}


def _reveal(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _str_or_none(value: Path | None) -> str | None:
    return str(value) if value is not None else None


def parse_tenant_domain_map(value: str) -> dict[str, str]:
    """Parse 'tenant=domain,...'; a malformed pair raises ValueError naming it."""
    mapping: dict[str, str] = {}
    for pair in (p.strip() for p in value.split(",")):
        if not pair:
            continue
        tenant, sep, domain = (s.strip() for s in pair.partition("="))
        if not sep or not tenant or not domain:
            raise ValueError(f"bad pair {pair!r}: expected tenant=domain")
        mapping[tenant] = domain
    return mapping


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, with explicit overrides (CLI flags) on top.

    Raises ConfigError naming the first offending variable.
    """
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = err.get("loc") or ()
        variable = str(loc[0]).upper() if loc else _variable_in(err.get("msg", ""))
        raise ConfigError(variable, _reason(err)) from exc


def _variable_in(message: str) -> str:
    match = re.search(r"\b[A-Z][A-Z_]{3,}\b", message)
    return match.group(0) if match else "settings"


def _reason(err: Any) -> str:
    reason = str(err.get("msg", "invalid value"))
    given = err.get("input")
    if given is not None and not isinstance(given, dict) and repr(given) not in reason:
        reason += f" (got {given!r})"
    return reason
