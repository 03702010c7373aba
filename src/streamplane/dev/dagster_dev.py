"""``make run``: the product as a user meets it, through Dagster.

Starts the embedded Kafka broker, ``dagster dev`` (webserver, daemon and code server on
a SQLite instance in a local ``DAGSTER_HOME`` under the data folder, sensors and the
snapshot schedule on), and the demo producer. The sensors then start the supervisor and
the worker runs; a user opens the UI and watches them, the lag plot and the features.

The demo producer writes a steady trickle (``--rate``) and, every ``--burst-interval``
seconds, a burst of ``--burst-records`` events as fast as it can: the lag sensor then
scales worker runs up, and they exit once idle; that is the product's headline to watch.

``dagster dev`` and everything it starts (runs included) live in a process group of
their own. Ctrl-C (or SIGTERM) stops in this order: the producers; the sensors and
schedules (stopped in the instance, so no tick launches anything more; the next start
turns them back on); queued runs are canceled; supervisor runs are terminated and
drain while their workers still ack; then worker runs are terminated, and other runs
(the snapshot) are left to finish; then ``dagster dev`` shuts down; the broker stops
last. No run is left canceling or failed by the stop.

The instance's ``dagster.yaml`` is written here, from the same ``STREAMPLANE_*``
settings the sensors read, so the run queue's tag concurrency limits always match them.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import click

from streamplane import processes
from streamplane.config import DevSettings, KafkaSettings, load_settings
from streamplane.dev.broker import EmbeddedBroker, ensure_jars
from streamplane.dev.dagster_instance import (
    RUNS_STOP_S,
    cancel_active_runs,
    fail_leftover_runs,
    initialize_instance,
    restore_instigators,
    stop_instigators,
    write_instance,
)
from streamplane.platform.kafka.admin import ensure_topics, ensure_topics_like

__all__ = ["dagster_dev", "run_dagster_dev", "stop_process_group"]

DEV_INPUT = "raw.events.demo"
DEV_PARTITIONS = 6
# Sensor cadence for the demo: fast enough to watch, slow enough for a 2-core laptop.
DEV_SENSOR_INTERVAL_S = "10"
# dagster dev's own shutdown (webserver, daemon, code server) seldom takes 10 s.
DAGSTER_STOP_S = 30.0
# The demo's lag per worker: a burst then asks for several workers on a laptop.
DEV_LAG_PER_WORKER = "10000"

WORKSPACE = """\
load_from:
  - python_module:
      module_name: streamplane.definitions
      attribute: defs
      location_name: streamplane
"""


def dev_environment(
    base: Mapping[str, str],
    bootstrap: str,
    home: Path,
    data_dir: Path,
    supervisor_port: int,
    http_port: int,
) -> dict[str, str]:
    """The environment of ``dagster dev`` (and so of every run it launches)."""
    env = dict(base)
    env.update(
        {
            "DAGSTER_HOME": str(home.resolve()),
            "KAFKA_BROKERS": bootstrap,
            "SUPERVISOR_LISTEN": f"127.0.0.1:{supervisor_port}",
            "SUPERVISOR_GRPC_ADDR": f"127.0.0.1:{supervisor_port}",
            "SUPERVISOR_HTTP_LISTEN": f"127.0.0.1:{http_port}",
            "STREAMPLANE_SNAPSHOT_DIR": str((data_dir / "snapshots").resolve()),
        }
    )
    env.setdefault("INPUT_TOPIC", DEV_INPUT)
    env.setdefault("STREAMPLANE_LAG_SENSOR_INTERVAL_S", DEV_SENSOR_INTERVAL_S)
    env.setdefault("STREAMPLANE_LIVENESS_SENSOR_INTERVAL_S", DEV_SENSOR_INTERVAL_S)
    env.setdefault("STREAMPLANE_SNAPSHOT_CRON", "* * * * *")
    env.setdefault("STREAMPLANE_WORKER_IDLE_EXIT_S", "30")
    env.setdefault("STREAMPLANE_LAG_PER_WORKER", DEV_LAG_PER_WORKER)
    return env


def provision_topics(bootstrap: str, kafka: KafkaSettings) -> None:
    """Create the input, output and dead-letter topics before any run reads or writes them.

    The supervisor makes the output and dead-letter topics as it starts, but the snapshot
    schedule's first tick can come before the supervisor run does: a fresh ``make run``
    then showed a failed feature_snapshot_job ("topic ... is not readable") on its Runs
    page. Made here the way the supervisor makes them, as wide as the input.
    """
    conf = {"bootstrap.servers": bootstrap}
    ensure_topics(conf, {kafka.input_topic: DEV_PARTITIONS})
    ensure_topics_like(conf, kafka.input_topic, [kafka.output_topic, kafka.dlq_topic])


def _start_dagster(
    env: dict[str, str], workspace: Path, port: int, log: Path
) -> subprocess.Popen[bytes]:
    """Start ``dagster dev`` in a new session (its own process group)."""
    argv = [str(Path(sys.executable).with_name("dagster")), "dev", "-w", str(workspace)]
    argv += ["-h", "127.0.0.1", "-p", str(port)]
    return processes.spawn(argv, env=env, output=log, append=True, own_session=True)


def _start_producer(
    env: Mapping[str, str],
    rate: float | None,
    bad_fraction: float,
    log: Path,
    count: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start a demo producer; it ignores the terminal's Ctrl-C and stops on SIGTERM.

    ``rate`` None writes as fast as the producer can (a burst); ``count`` None, forever.
    """
    args = ["produce", "--bad-fraction", str(bad_fraction)]
    args += [] if rate is None else ["--rate", str(rate)]
    args += [] if count is None else ["--count", str(count)]
    return processes.spawn(
        processes.streamplane_argv(*args),
        env=dict(env),
        output=log,
        append=True,
        ignore_sigint=True,
    )


def stop_process_group(
    proc: subprocess.Popen[bytes],
    leader_timeout: float = DAGSTER_STOP_S,
    group_timeout: float = RUNS_STOP_S,
) -> None:
    """Stop a Dagster service started in a session of its own, and all it started.

    SIGINT asks the leader (``dagster dev``, ``dagster-webserver``, ``dagster-daemon``)
    for its graceful shutdown; then whatever is left of its process group (run workers,
    code servers) gets SIGTERM, so run workers interrupt their ops and the supervisor
    and worker processes drain; what outlives ``group_timeout`` is killed.
    """
    processes.stop_session(proc, leader_timeout, group_timeout, leader_signal=signal.SIGINT)


@dataclass(frozen=True)
class Bursts:
    """The demo's bursts: ``records`` events every ``interval_s`` (none when 0 records)."""

    records: int
    interval_s: float

    def first_at(self, start: float) -> float:
        """When the first burst goes: a third of the interval in (the supervisor is up)."""
        return start + self.interval_s / 3


def _banner(
    bootstrap: str,
    port: int,
    http_port: int,
    logs: Path,
    env: Mapping[str, str],
    bursts: Bursts,
) -> str:
    home = Path(env["DAGSTER_HOME"])
    watch = (
        f"  watch     every {bursts.interval_s:.0f} s a burst of {bursts.records} events "
        f"(the first after {bursts.interval_s / 3:.0f} s): kafka_lag_sensor starts up to "
        f"{env.get('STREAMPLANE_MAX_WORKERS', '4')} worker runs on the lag (Runs page), and "
        f"they exit after {env['STREAMPLANE_WORKER_IDLE_EXIT_S']} s idle; raw_events plots "
        "lag and records/s in and out; dead_letters counts the bad events by tenant and kind\n"
        if bursts.records
        else "  watch     a steady trickle (no bursts): one worker run keeps up with it\n"
    )
    shell_home = shlex.quote(str(home))
    return (
        "streamplane (Dagster) is running\n"
        f"  dagster   http://127.0.0.1:{port}  (sensors start the supervisor and workers)\n"
        f"  kafka     {bootstrap}  (topics {DEV_INPUT} -> features.events.demo)\n"
        f"  health    http://127.0.0.1:{http_port}/readyz  (once the supervisor runs)\n"
        f"  status    http://127.0.0.1:{http_port}/v1/status  (progress, dead letters)\n"
        f"{watch}"
        f"  instance  {home}\n"
        f"  logs      {logs}/\n"
        "For the dagster CLI (dagster job launch ...) in another shell, from this folder:\n"
        f"  export DAGSTER_HOME={shell_home}\n"
        f"Dead letters: streamplane dlq tail --kafka-brokers {bootstrap}\n"
        "Ctrl-C stops everything."
    )


def run_dagster_dev(
    data_dir: Path,
    broker_port: int = 9092,
    dagster_port: int = 3000,
    supervisor_port: int = 7000,
    http_port: int = 8080,
    rate: float = 200.0,
    bad_fraction: float = 0.01,
    bursts: Bursts | None = None,
) -> int:
    """Run broker, ``dagster dev`` and the demo producer until interrupted.

    Returns the exit status: 0 after Ctrl-C/SIGTERM, 1 if a part died on its own.
    ``data_dir`` may be relative: it is resolved against the working directory once,
    here, and every path below it (broker, instance, logs) is absolute.
    """
    data_dir = Path(data_dir).expanduser().absolute()
    face = load_settings().face
    data_dir.mkdir(parents=True, exist_ok=True)
    logs = data_dir / "logs"
    logs.mkdir(exist_ok=True)
    home = data_dir / "dagster-home"
    write_instance(home, face)
    initialize_instance(home)
    fail_leftover_runs(home)
    restore_instigators(home)
    workspace = data_dir / "workspace.yaml"
    workspace.write_text(WORKSPACE)
    ensure_jars()
    broker = EmbeddedBroker(data_dir / "broker", port=broker_port)
    # Ctrl-C in a terminal signals the whole foreground process group. The broker must
    # outlive the runs' drain (their final commits go to it), so its JVM starts with
    # SIGINT ignored, which it keeps; this process stops it last, with SIGTERM.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        bootstrap = broker.start()
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        env = dev_environment(os.environ, bootstrap, home, data_dir, supervisor_port, http_port)
        settings = load_settings(kafka_brokers=bootstrap, input_topic=env["INPUT_TOPIC"])
        provision_topics(bootstrap, settings.kafka)
        dev = settings.dev
        bursts = bursts or Bursts(dev.dev_burst_records, dev.dev_burst_interval_s)
        return _supervise(env, workspace, dagster_port, rate, bad_fraction, logs, bootstrap, bursts)
    finally:
        broker.stop()
        print("streamplane (Dagster) stopped", flush=True)


def _supervise(
    env: dict[str, str],
    workspace: Path,
    port: int,
    rate: float,
    bad_fraction: float,
    logs: Path,
    bootstrap: str,
    bursts: Bursts,
) -> int:
    """Run dagster dev and the producers until a signal or until one of them dies."""
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    dagster = _start_dagster(env, workspace, port, logs / "dagster.log")
    producer = _start_producer(env, rate, bad_fraction, logs / "producer.log")
    http_port = int(env["SUPERVISOR_HTTP_LISTEN"].rpartition(":")[2])
    home = Path(env["DAGSTER_HOME"])
    print(_banner(bootstrap, port, http_port, logs, env, bursts), flush=True)
    status = 0
    burst: subprocess.Popen[bytes] | None = None
    next_burst = bursts.first_at(time.monotonic())
    try:
        while not stopping:
            dead = processes.first_exit({"dagster dev": dagster, "producer": producer})
            if dead is not None:
                print(f"{dead[0]} exited with {dead[1]}; stopping", flush=True)
                status, stopping = 1, True
            if bursts.records and time.monotonic() >= next_burst and not stopping:
                if burst is None or burst.poll() is not None:
                    print(f"burst: {bursts.records} events as fast as they go", flush=True)
                    burst = _start_producer(
                        env, None, bad_fraction, logs / "burst.log", count=bursts.records
                    )
                next_burst = time.monotonic() + bursts.interval_s
            time.sleep(0.5)
    finally:
        began = time.monotonic()
        processes.stop(producer, 10)
        if burst is not None:
            processes.stop(burst, 10)
        print(
            "stopping: sensors and schedules off, then runs drain, then Dagster, then Kafka",
            flush=True,
        )
        stop_instigators(home)
        cancel_active_runs(home)
        stop_process_group(dagster)
        print(f"runs and Dagster stopped in {time.monotonic() - began:.1f} s", flush=True)
    return status


_DEV_DEFAULTS = DevSettings.model_construct()


@click.command("dagster-dev")
@click.option(
    "--data-dir",
    envvar="STREAMPLANE_DEV_DATA_DIR",
    show_envvar=True,
    type=click.Path(path_type=Path),
    default=Path(".data/dagster-dev"),
    help="Folder for the broker, the Dagster instance, snapshots and logs",
)
@click.option(
    "--broker-port",
    envvar="STREAMPLANE_BROKER_PORT",
    show_envvar=True,
    type=int,
    default=9092,
    help="Kafka listener port",
)
@click.option(
    "--dagster-port",
    envvar="DAGSTER_PORT",
    show_envvar=True,
    type=int,
    default=3000,
    help="Dagster webserver port",
)
@click.option(
    "--supervisor-port",
    envvar="STREAMPLANE_DEV_SUPERVISOR_PORT",
    show_envvar=True,
    type=int,
    default=7000,
    help="Supervisor gRPC port (workers dial it)",
)
@click.option(
    "--http-port",
    envvar="STREAMPLANE_DEV_HTTP_PORT",
    show_envvar=True,
    type=int,
    default=8080,
    help="Supervisor HTTP port (health, metrics)",
)
@click.option(
    "--rate",
    envvar="PRODUCE_RATE",
    show_envvar=True,
    type=float,
    default=200.0,
    help="Demo events per second",
)
@click.option(
    "--bad-fraction",
    envvar="PRODUCE_BAD_FRACTION",
    show_envvar=True,
    type=click.FloatRange(0, 1),
    default=0.01,
    help="Share of malformed events",
)
@click.option(
    "--burst-records",
    envvar="STREAMPLANE_DEV_BURST_RECORDS",
    show_envvar=True,
    type=click.IntRange(min=0),
    default=None,
    help=f"Events per demo burst, 0 for none [default: {_DEV_DEFAULTS.dev_burst_records}]",
)
@click.option(
    "--burst-interval",
    envvar="STREAMPLANE_DEV_BURST_INTERVAL_S",
    show_envvar=True,
    type=click.FloatRange(min=1),
    default=None,
    help=f"Seconds between demo bursts [default: {_DEV_DEFAULTS.dev_burst_interval_s:g}]",
)
def dagster_dev(
    data_dir: Path,
    broker_port: int,
    dagster_port: int,
    supervisor_port: int,
    http_port: int,
    rate: float,
    bad_fraction: float,
    burst_records: int | None,
    burst_interval: float | None,
) -> None:
    """Kafka, Dagster (webserver, daemon, sensors) and a bursty demo producer; Ctrl-C stops all.

    The burst defaults live on the dev settings (``STREAMPLANE_DEV_BURST_*``).
    """
    bursts = Bursts(
        _DEV_DEFAULTS.dev_burst_records if burst_records is None else burst_records,
        _DEV_DEFAULTS.dev_burst_interval_s if burst_interval is None else burst_interval,
    )
    sys.exit(
        run_dagster_dev(
            data_dir,
            broker_port,
            dagster_port,
            supervisor_port,
            http_port,
            rate,
            bad_fraction,
            bursts,
        )
    )


if __name__ == "__main__":
    dagster_dev()
