"""The `streamplane` command.

Every flag has an environment variable, and every setting variable that a command uses
has a flag; bad values exit with status 2 naming the variable.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from streamplane import __version__, logs
from streamplane.config import Settings, load_settings
from streamplane.exceptions import ConfigError, StreamplaneError

F = TypeVar("F", bound=Callable[..., Any])

KAFKA = (
    "kafka_brokers",
    "kafka_security_protocol",
    "kafka_sasl_mechanism",
    "kafka_sasl_username",
    "kafka_sasl_password",
    "kafka_ssl_ca_location",
    "kafka_ssl_certificate_location",
    "kafka_ssl_key_location",
    "kafka_ssl_key_password",
)
TOPICS = ("input_topic", "output_topic", "dlq_topic")
SUPERVISOR = (
    *KAFKA,
    *TOPICS,
    "consumer_group",
    "supervisor_listen",
    "supervisor_http_listen",
    "max_attempts",
    "ordering",
    "batch_max_records",
    "batch_max_bytes",
    "batch_linger_ms",
    "max_pending_records",
    "resume_pending_records",
    "lease_timeout_s",
    "retry_backoff_ms",
    "commit_interval_ms",
    "drain_timeout_s",
    "mesh_publish_endpoint",
    "mesh_source_node",
    "mesh_publish_domain",
    "mesh_tenant_domain_map",
    "mesh_services_file",
    "rl_results_topic",
    "rl_buffer_dir",
)
WORKER = (
    *KAFKA,
    "output_topic",
    "dlq_topic",
    "supervisor_grpc_addr",
    "max_inflight",
    "worker_id",
    "worker_engine",
    "worker_processor",
    "worker_idle_exit_s",
    "reconnect_max_backoff_s",
    "drain_timeout_s",
    "mesh_node_id",
    "mesh_endpoint",
    "mesh_domain",
    "rl_results_topic",
)
# Extra, shorter flag names for some settings (the `--field-name` flag always exists).
FLAG_ALIASES = {"mesh_tenant_domain_map": ("--tenant-domain-map",)}


def settings_options(*names: str) -> Callable[[F], F]:
    """Add one `--flag` per Settings field, read from the field's variable too."""

    def decorate(fn: F) -> F:
        for name in reversed(names):
            info = Settings.model_fields[name]
            fn = click.option(
                f"--{name.replace('_', '-')}",
                *FLAG_ALIASES.get(name, ()),
                name,
                envvar=name.upper(),
                show_envvar=True,
                default=None,
                help=info.description or name.replace("_", " "),
            )(fn)
        return fn

    return decorate


def _settings(values: dict[str, Any], names: tuple[str, ...]) -> Settings:
    return load_settings(**{k: values.get(k) for k in names})


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="streamplane")
@click.option(
    "--log-level",
    envvar="LOG_LEVEL",
    show_envvar=True,
    default="INFO",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def cli(log_level: str) -> None:
    """streamplane: a streaming data plane for Kafka."""
    logs.configure(log_level)


@cli.command()
@click.option(
    "--data-dir",
    envvar="STREAMPLANE_BROKER_DATA_DIR",
    show_envvar=True,
    type=click.Path(path_type=Path),
    default=Path(".data/broker"),
    help="Folder for the broker's log and metadata",
)
@click.option(
    "--port",
    envvar="STREAMPLANE_BROKER_PORT",
    show_envvar=True,
    type=int,
    default=9092,
    help="Listener port (0 picks a free one)",
)
def broker(data_dir: Path, port: int) -> None:
    """Run a single-node Apache Kafka (KRaft) for development and tests."""
    from streamplane.platform.kafka.broker import run_broker

    sys.exit(run_broker(data_dir, port))


@cli.command()
@settings_options(*SUPERVISOR)
def supervisor(**values: Any) -> None:
    """Consume INPUT_TOPIC and dispatch tasks to workers by credit."""
    settings = _settings(values, SUPERVISOR)
    from streamplane.platform.supervisor.app import run_supervisor

    sys.exit(run_supervisor(settings))


@cli.command()
@settings_options(*WORKER)
def worker(**values: Any) -> None:
    """Take tasks from a supervisor, compute features, write them to OUTPUT_TOPIC."""
    settings = _settings(values, WORKER)
    from streamplane.platform.worker.client import run_worker

    sys.exit(run_worker(settings))


@cli.command("mesh-node")
@click.option(
    "--node-id",
    "mesh_node_id",
    envvar="MESH_NODE_ID",
    show_envvar=True,
    default=None,
    help="This node's id in the manifest",
)
@click.option(
    "--listen",
    envvar="MESH_NODE_LISTEN",
    show_envvar=True,
    default=None,
    help="gRPC listen address [HOST]:PORT (default: the port of the node's endpoint)",
)
@click.option(
    "--services",
    "mesh_services_file",
    envvar="MESH_SERVICES_FILE",
    show_envvar=True,
    default=None,
    help="JSON manifest of mesh nodes (default: the packaged hub/worker/trainer manifest)",
)
@click.option(
    "--queue-capacity",
    envvar="MESH_NODE_QUEUE_CAPACITY",
    show_envvar=True,
    type=click.IntRange(1, 1_000_000),
    default=256,
    help="Envelopes each subscriber queue holds before publishes get RESOURCE_EXHAUSTED",
)
@click.option(
    "--metrics-listen",
    envvar="MESH_NODE_METRICS_LISTEN",
    show_envvar=True,
    default=None,
    help="HTTP address for /metrics, [HOST]:PORT (default: none)",
)
def mesh_node(
    listen: str | None, queue_capacity: int, metrics_listen: str | None, **values: Any
) -> None:
    """Run a MeshData node: route envelopes by domain, via the hub when not local."""
    settings = _settings(values, ("mesh_node_id", "mesh_services_file"))
    if not settings.mesh_node_id:
        raise ConfigError("MESH_NODE_ID", "a mesh node needs its id (--node-id)")
    from streamplane.platform.mesh.node import run_mesh_node

    sys.exit(
        run_mesh_node(
            settings.mesh_node_id,
            listen,
            settings.mesh_services_file,
            queue_capacity,
            metrics_listen,
        )
    )


@cli.command()
@settings_options(*KAFKA, "input_topic")
@click.option(
    "--count",
    envvar="PRODUCE_COUNT",
    show_envvar=True,
    type=int,
    default=None,
    help="Events to write (default: until interrupted)",
)
@click.option(
    "--rate",
    envvar="PRODUCE_RATE",
    show_envvar=True,
    type=float,
    default=None,
    help="Events per second (default: as fast as possible)",
)
@click.option(
    "--tenants",
    envvar="PRODUCE_TENANTS",
    show_envvar=True,
    type=click.IntRange(1),
    default=3,
    help="Distinct tenants",
)
@click.option(
    "--users",
    envvar="PRODUCE_USERS",
    show_envvar=True,
    type=click.IntRange(1),
    default=1000,
    help="Distinct user ids (record keys)",
)
@click.option(
    "--bad-fraction",
    envvar="PRODUCE_BAD_FRACTION",
    show_envvar=True,
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Share of malformed events",
)
@click.option(
    "--partitions",
    envvar="PRODUCE_PARTITIONS",
    show_envvar=True,
    type=click.IntRange(1),
    default=6,
    help="Partitions if the topic must be created",
)
@click.option("--seed", envvar="PRODUCE_SEED", show_envvar=True, type=int, default=7)
@click.option(
    "--rollouts",
    envvar="PRODUCE_ROLLOUTS",
    show_envvar=True,
    type=click.IntRange(1),
    default=None,
    help="Write N RL rollout requests instead of demo events",
)
@click.option(
    "--skill",
    envvar="PRODUCE_SKILL",
    show_envvar=True,
    default="default",
    help="Skill of the rollout requests",
)
def produce(
    count: int | None,
    rate: float | None,
    tenants: int,
    users: int,
    bad_fraction: float,
    partitions: int,
    seed: int,
    rollouts: int | None,
    skill: str,
    **values: Any,
) -> None:
    """Write demo events (JSON, ~200 bytes), or RL rollout requests, to INPUT_TOPIC."""
    from confluent_kafka import Producer

    from streamplane.platform.demo_events import events, produce_events
    from streamplane.platform.kafka.admin import ensure_topics

    settings = _settings(values, (*KAFKA, "input_topic"))
    kafka = settings.as_librdkafka_dict()
    ensure_topics(kafka, {settings.input_topic: partitions})
    if rollouts is not None:
        _produce_rollouts(settings, rollouts, skill, seed)
        return
    producer = Producer({**kafka, "linger.ms": 20, "compression.type": "lz4"})
    written, bad = produce_events(
        producer, settings.input_topic, events(count, tenants, users, bad_fraction, seed), rate
    )
    click.echo(f"wrote {written} events ({bad} malformed) to {settings.input_topic}")


def _produce_rollouts(settings: Settings, count: int, skill: str, seed: int) -> None:
    from pydantic import ValidationError

    from streamplane.platform.training.produce import produce_rollouts

    try:
        written = produce_rollouts(settings, count, skill, seed=seed)
    except ValidationError as exc:
        reason = exc.errors()[0].get("msg", "invalid value")
        raise ConfigError("PRODUCE_SKILL", str(reason)) from exc
    click.echo(f"wrote {written} rollout requests (skill {skill}) to {settings.input_topic}")


@cli.command("rl-buffer")
@settings_options(*KAFKA, "rl_results_topic", "rl_buffer_dir")
def rl_buffer(**values: Any) -> None:
    """Consume RL_RESULTS_TOPIC into Parquet shards in RL_BUFFER_DIR (the replay buffer)."""
    settings = _settings(values, (*KAFKA, "rl_results_topic", "rl_buffer_dir"))
    from streamplane.platform.training.buffer_service import run_rl_buffer

    sys.exit(run_rl_buffer(settings))


@cli.command()
@click.option(
    "--data-dir",
    envvar="STREAMPLANE_DEV_DATA_DIR",
    show_envvar=True,
    type=click.Path(path_type=Path),
    default=Path(".data/dev"),
)
@click.option("--port", envvar="STREAMPLANE_BROKER_PORT", show_envvar=True, type=int, default=9092)
@click.option(
    "--workers",
    envvar="STREAMPLANE_DEV_WORKERS",
    show_envvar=True,
    type=click.IntRange(0),
    default=2,
)
@click.option("--rate", envvar="PRODUCE_RATE", show_envvar=True, type=float, default=200.0)
@click.option(
    "--bad-fraction",
    envvar="PRODUCE_BAD_FRACTION",
    show_envvar=True,
    type=click.FloatRange(0, 1),
    default=0.01,
)
def dev(data_dir: Path, port: int, workers: int, rate: float, bad_fraction: float) -> None:
    """Broker, supervisor, workers and a producer as one process tree (Ctrl-C stops all)."""
    from streamplane.platform.devstack import run_dev

    sys.exit(run_dev(data_dir, port, workers, rate, bad_fraction))


@cli.command()
@settings_options(*KAFKA)
@click.option(
    "--count",
    envvar="BENCH_COUNT",
    show_envvar=True,
    type=click.IntRange(1000),
    default=1_000_000,
    help="Events in the input topic",
)
@click.option(
    "--partitions", envvar="BENCH_PARTITIONS", show_envvar=True, type=click.IntRange(1), default=6
)
@click.option(
    "--data-dir",
    envvar="BENCH_DATA_DIR",
    show_envvar=True,
    type=click.Path(path_type=Path),
    default=None,
    help="Broker folder when the bench starts its own (default: a temp dir)",
)
@click.option(
    "--transport",
    envvar="BENCH_TRANSPORT",
    show_envvar=True,
    type=click.Choice(["grpc", "mesh"]),
    default="grpc",
    help="mesh: also run the pipeline with tasks through MeshData nodes, and its ratio",
)
def bench(
    count: int, partitions: int, data_dir: Path | None, transport: str, **values: Any
) -> None:
    """Measure passthrough vs pipeline throughput and latency; print one JSON line."""
    from streamplane.platform.bench import run_bench

    sys.exit(run_bench(values, count, partitions, data_dir, transport))


def _add_dagster_dev() -> None:
    # The Dagster face's `make run` entry, kept in its own module: the runtime commands
    # above never import Dagster.
    from streamplane.dagster_dev import dagster_dev

    cli.add_command(dagster_dev)


_add_dagster_dev()


def main() -> None:
    """Console entry point: configuration errors exit 2 with the variable's name."""
    try:
        cli.main(standalone_mode=False)
    except ConfigError as exc:
        click.echo(f"streamplane: configuration error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except StreamplaneError as exc:
        click.echo(f"streamplane: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
