"""The `streamplane` command.

Every flag has an environment variable, and every setting variable that a command uses
has a flag; bad values exit with status 2 naming the variable.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from streamplane import __version__, logs
from streamplane.config import (
    BenchSettings,
    BrokerSettings,
    DeadLetterSettings,
    DevSettings,
    KafkaSettings,
    MeshNodeSettings,
    MeshSettings,
    ProcessSettings,
    ProduceSettings,
    RLSettings,
    Section,
    Settings,
    SupervisorSettings,
    WorkerSettings,
    load_settings,
    variable_of,
)
from streamplane.config.base import build
from streamplane.exceptions import ConfigError, StreamplaneError

F = TypeVar("F", bound=Callable[..., Any])


def section_options(*sections: type[Section], exclude: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Add one ``--flag`` per field of ``sections``, read from the field's variable too.

    Defaults stay on the fields: an unset flag passes None, and the settings fall through
    to the environment and then to the field's default (shown in the help).
    """

    def decorate(fn: F) -> F:
        for section in reversed(sections):
            for name, info in reversed(section.model_fields.items()):
                if name not in exclude:
                    fn = _option(section, name, info)(fn)
        return fn

    return decorate


def _option(section: type[Section], name: str, info: FieldInfo) -> Callable[[F], F]:
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    flag = "--" + name.removeprefix(section.flag_prefix).replace("_", "-")
    aliases = [str(f) for f in extra.get("flags") or () if f != flag]  # type: ignore[union-attr]
    help_text = info.description or name.replace("_", " ")
    if info.default is not None and not isinstance(info.default, SecretStr):
        help_text += f" [default: {info.default}]"
    return click.option(
        flag,
        *aliases,
        name,
        envvar=variable_of(section, name),
        show_envvar=True,
        default=None,
        help=help_text,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="streamplane")
@section_options(ProcessSettings, exclude=("drain_timeout_s",))
def cli(log_level: str | None) -> None:
    """streamplane: a streaming data plane for Kafka."""
    logs.configure(build(ProcessSettings, {"log_level": log_level}).log_level)


@cli.command()
@section_options(BrokerSettings)
def broker(**values: Any) -> None:
    """Run a single-node Apache Kafka (KRaft) for development and tests."""
    settings = load_settings(**values).broker
    from streamplane.dev.broker import run_broker

    sys.exit(run_broker(settings.broker_data_dir, settings.broker_port))


# Sections each command reads; a command offers a flag for every field of them.
_PLANE = (KafkaSettings, ProcessSettings, MeshSettings, RLSettings)


@cli.command()
@section_options(*_PLANE, SupervisorSettings, exclude=("log_level",))
def supervisor(**values: Any) -> None:
    """Consume INPUT_TOPIC and dispatch tasks to workers by credit."""
    settings = load_settings(**values)
    from streamplane.platform.supervisor.app import run_supervisor
    from streamplane.rl.host import RLExtension

    sys.exit(run_supervisor(settings, [RLExtension(settings)]))


@cli.command()
@section_options(*_PLANE, WorkerSettings, exclude=("log_level",))
def worker(**values: Any) -> None:
    """Take tasks from a supervisor, compute features, write them to OUTPUT_TOPIC."""
    settings = load_settings(**values)
    from streamplane.platform.worker.client import run_worker

    sys.exit(run_worker(settings))


@cli.command("mesh-node")
@section_options(MeshSettings, MeshNodeSettings)
def mesh_node(**values: Any) -> None:
    """Run a MeshData node: route envelopes by domain, via the hub when not local."""
    settings = load_settings(**values)
    mesh, node = settings.mesh, settings.mesh_node
    if not mesh.mesh_node_id:
        raise ConfigError("MESH_NODE_ID", "a mesh node needs its id (--node-id)")
    from streamplane.platform.mesh.node import run_mesh_node
    from streamplane.platform.rpc import Security

    sys.exit(
        run_mesh_node(
            mesh.mesh_node_id,
            node.mesh_node_listen,
            mesh.mesh_services_file,
            node.mesh_node_queue_capacity,
            node.mesh_node_metrics_listen,
            Security.of(settings.rpc),
        )
    )


@cli.command()
@section_options(KafkaSettings, ProduceSettings)
def produce(**values: Any) -> None:
    """Write demo events (JSON, ~200 bytes), or RL rollout requests, to INPUT_TOPIC."""
    from streamplane.dev.demo_events import events, produce_events
    from streamplane.platform.kafka.admin import ensure_topics
    from streamplane.platform.kafka.config import demo_producer_config
    from streamplane.platform.kafka.producer import DurableProducer

    settings = load_settings(**values)
    p = settings.produce
    kafka = settings.kafka.as_librdkafka_dict()
    ensure_topics(kafka, {settings.kafka.input_topic: p.produce_partitions})
    if p.produce_rollouts is not None:
        _produce_rollouts(settings, p.produce_rollouts, p.produce_skill, p.produce_seed)
        return
    producer = DurableProducer(demo_producer_config(kafka))
    stream = events(
        p.produce_count, p.produce_tenants, p.produce_users, p.produce_bad_fraction, p.produce_seed
    )
    written, bad = produce_events(producer, settings.kafka.input_topic, stream, p.produce_rate)
    click.echo(f"wrote {written} events ({bad} malformed) to {settings.kafka.input_topic}")


def _produce_rollouts(settings: Settings, count: int, skill: str, seed: int) -> None:
    from pydantic import ValidationError

    from streamplane.rl.produce import produce_rollouts

    try:
        written = produce_rollouts(settings, count, skill, seed=seed)
    except ValidationError as exc:
        reason = exc.errors()[0].get("msg", "invalid value")
        raise ConfigError("PRODUCE_SKILL", str(reason)) from exc
    topic = settings.kafka.input_topic
    click.echo(f"wrote {written} rollout requests (skill {skill}) to {topic}")


@cli.command("rl-buffer")
@section_options(KafkaSettings, RLSettings)
def rl_buffer(**values: Any) -> None:
    """Consume RL_RESULTS_TOPIC into Parquet shards in RL_BUFFER_DIR (the replay buffer)."""
    settings = load_settings(**values)
    from streamplane.rl.buffer.service import run_rl_buffer

    sys.exit(run_rl_buffer(settings))


@cli.command()
@section_options(DevSettings, BrokerSettings, exclude=("broker_data_dir",))
def dev(**values: Any) -> None:
    """Broker, supervisor, workers and a producer as one process tree (Ctrl-C stops all)."""
    settings = load_settings(**values)
    d = settings.dev
    from streamplane.dev.devstack import run_dev

    sys.exit(
        run_dev(
            d.dev_data_dir,
            settings.broker.broker_port,
            d.dev_workers,
            d.dev_rate,
            d.dev_bad_fraction,
        )
    )


@cli.group()
def dlq() -> None:
    """Dead letters: records the plane could not turn into features (DLQ_TOPIC)."""


@dlq.command("tail")
@section_options(KafkaSettings, DeadLetterSettings)
def dlq_tail(**values: Any) -> None:
    """Print the latest dead letters, one a line: position, source, tenant, kind, reason, value."""
    from streamplane.platform.dead_letter_reader import tail_dead_letters

    settings = load_settings(**values)
    conf = settings.kafka.as_librdkafka_dict()
    topic, d = settings.kafka.dlq_topic, settings.dlq
    letters = tail_dead_letters(conf, topic, d.dlq_count, d.dlq_timeout_s)
    for letter in letters:
        click.echo(letter.line())
    click.echo(f"{len(letters)} dead letters from {topic}", err=True)


@cli.command()
@section_options(KafkaSettings, BenchSettings)
def bench(**values: Any) -> None:
    """Measure passthrough vs pipeline throughput and latency; print one JSON line."""
    settings = load_settings(**values)
    b = settings.bench
    from streamplane.dev.bench import run_bench

    kafka_values = {k: v for k, v in values.items() if k in KafkaSettings.model_fields}
    sys.exit(
        run_bench(
            kafka_values,
            b.bench_count,
            b.bench_partitions,
            b.bench_data_dir,
            b.bench_transport,
            b.bench_guarantee,
        )
    )


def _add_dagster_dev() -> None:
    # The Dagster face's `make run` entry, kept in its own module: the runtime commands
    # above never import Dagster.
    from streamplane.dev.dagster_dev import dagster_dev

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
