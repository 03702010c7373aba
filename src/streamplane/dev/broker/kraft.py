"""A single-node KRaft broker's files: cluster id, ``server.properties``, log4j, format.

Every path written into the configs is absolute: Kafka's tools run with the data dir
as their working directory, where a path relative to anywhere else means nothing.
"""

from __future__ import annotations

import base64
import re
import subprocess
import uuid
from pathlib import Path

from streamplane.dev.broker.jars import tail_text
from streamplane.platform.kafka.exceptions import BrokerStartError

__all__ = ["LOG_DIR_NAME", "cluster_id", "format_log_dir", "write_log4j", "write_properties"]

LOG_DIR_NAME = "kraft-combined-logs"
_CLUSTER_ID_FILE = "cluster-id"

# Formatting the log dir is a short JVM run; a minute covers a loaded 2-core machine.
_FORMAT_TIMEOUT_S = 120.0


def is_formatted(data_dir: Path) -> bool:
    """Whether the data dir's log dir has been formatted."""
    return (data_dir / LOG_DIR_NAME / "meta.properties").exists()


def cluster_id(data_dir: Path) -> str:
    """Return the cluster id kept in the data dir, creating it on first use."""
    # A formatted log dir is the authority (the readiness check compares against what
    # the broker reports); the side file only carries the id until formatting.
    meta = data_dir / LOG_DIR_NAME / "meta.properties"
    if meta.exists():
        match = re.search(r"^cluster\.id=(\S+)", meta.read_text(), re.MULTILINE)
        if match is not None:
            return match.group(1)
    path = data_dir / _CLUSTER_ID_FILE
    if path.exists():
        return path.read_text().strip()
    new_id = _new_cluster_id()
    path.write_text(new_id + "\n")
    return new_id


def _new_cluster_id() -> str:
    """Make a cluster id the way Kafka's ``Uuid.randomUuid`` prints one.

    URL-safe base64 of 16 random bytes without padding; ids starting with ``-`` are
    skipped because the command line would read them as an option.
    """
    while True:
        new_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not new_id.startswith("-"):
            return new_id


def write_properties(data_dir: Path, host: str, port: int, controller_port: int) -> Path:
    """Write ``server.properties`` for this start's ports and return its path."""
    settings = {
        # One JVM is both the broker and the sole KRaft controller.
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{host}:{controller_port}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str((data_dir / LOG_DIR_NAME).absolute()),
        # A single node can only hold one replica of anything; the defaults (3) would
        # make the internal topics impossible to create.
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # 50 partitions (the default) per internal topic cost seconds of creation on
        # a 2-core machine and buy nothing on one node.
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.num.partitions": "8",
        # Tests create a group per test; the 3 s default delay would stall each one.
        "group.initial.rebalance.delay.ms": "0",
        # Lets fault tests use short session timeouts so a SIGKILLed consumer's
        # partitions move within seconds (the broker default floor is 6 s).
        "group.min.session.timeout.ms": "1000",
        "num.partitions": "1",
        # Topics are created explicitly (ensure_topics); a typo must fail, not create.
        "auto.create.topics.enable": "false",
        # Two network and four I/O threads suit a 2-core machine better than 3/8.
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
    }
    path = data_dir / "server.properties"
    path.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    return path.absolute()


def write_log4j(data_dir: Path) -> Path:
    """Write the log4j2 config (WARN and above, to the JVM's redirected stdout)."""
    path = data_dir / "log4j2.properties"
    path.write_text(
        "status = error\n"
        "name = streamplane-embedded-kafka\n"
        "appender.out.type = Console\n"
        "appender.out.name = OUT\n"
        "appender.out.layout.type = PatternLayout\n"
        "appender.out.layout.pattern = [%d] %p %m (%c)%n\n"
        "rootLogger.level = WARN\n"
        "rootLogger.appenderRef.out.ref = OUT\n"
        # One INFO logger for the start/stop milestones, so the log shows when the
        # broker came up, which makes a failure's tail readable.
        "logger.lifecycle.name = kafka.server.KafkaRaftServer\n"
        "logger.lifecycle.level = INFO\n"
    )
    return path.absolute()


def format_log_dir(
    data_dir: Path, java: str, classpath: str, properties: Path, log4j: Path
) -> None:
    """Format the KRaft log dir as a standalone single-voter cluster.

    Raises:
        BrokerStartError: the tool failed or did not finish in time.
    """
    command = [
        java,
        "-Xmx256m",
        # A one-shot tool: C1 alone starts faster and the run is too short for C2.
        "-XX:TieredStopAtLevel=1",
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        classpath,
        "kafka.tools.StorageTool",
        "format",
        "--standalone",
        "-t",
        cluster_id(data_dir),
        "-c",
        str(properties),
    ]
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=_FORMAT_TIMEOUT_S,
            check=False,
            cwd=data_dir,
        )
    except subprocess.TimeoutExpired as exc:
        raise BrokerStartError(
            f"formatting {data_dir} did not finish within {_FORMAT_TIMEOUT_S:.0f} s"
        ) from exc
    if result.returncode != 0:
        raise BrokerStartError(
            f"formatting the KRaft log dir in {data_dir} failed "
            f"(exit {result.returncode}):\n" + tail_text(result.stdout + result.stderr)
        )
