"""A real single-node Apache Kafka broker (KRaft) for development and tests.

No Kafka broker ships on PyPI, so the jars come from Maven Central through ``pom.xml``
beside this module and run on the local JDK (17+). :func:`ensure_jars` fetches them
once into a cache; :class:`EmbeddedBroker` formats a KRaft log dir, launches
``kafka.Kafka`` and waits until the broker answers; :func:`run_broker` is the foreground
entry behind ``streamplane broker``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from types import FrameType, TracebackType

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streamplane.platform.kafka.exceptions import (
    BrokerError,
    BrokerStartError,
    BrokerToolMissing,
)

__all__ = [
    "POM_PATH",
    "EmbeddedBroker",
    "default_cache_dir",
    "ensure_jars",
    "find_java",
    "find_maven",
    "kafka_version",
    "run_broker",
]

logger = logging.getLogger(__name__)

POM_PATH = Path(__file__).with_name("pom.xml")
"""The pom whose runtime dependencies are the broker's classpath."""

MIN_JAVA_MAJOR = 17
"""Kafka 4 brokers require Java 17 (KIP-750)."""

_JAVA_HINT = "install a JDK 17+ (Debian: apt-get install openjdk-17-jre-headless)"
_MAVEN_HINT = "install Apache Maven to fetch the Kafka jars (Debian: apt-get install maven)"

# Maven resolves ~40 jars (~35 MB) on first use; a slow mirror can take minutes, but an
# hour means something is stuck and the user should see an error rather than a hang.
_MAVEN_TIMEOUT_S = 3600.0

# A download killed with SIGKILL leaves its staging folder behind; one older than this
# cannot belong to a download still running, so it is swept on the next call.
_STALE_STAGING_S = 2 * _MAVEN_TIMEOUT_S

# Formatting the log dir is a short JVM run; a minute covers a loaded 2-core machine.
_FORMAT_TIMEOUT_S = 120.0

# Inside the jar folder: the SHA-256 of the pom the jars were resolved from. A dot file,
# so the `libs/*` classpath wildcard (which only matches *.jar) never sees it.
_POM_STAMP = ".pom-sha256"

_CLUSTER_ID_FILE = "cluster-id"
_LOG_DIR_NAME = "kraft-combined-logs"


# --------------------------------------------------------------------------- tools & jars


def kafka_version() -> str:
    """Return the Kafka version the pom pins (its ``kafka.version`` property)."""
    # A regex rather than an XML parser: the pom is ours and the property is one line,
    # and it keeps an XML parser (and its entity-expansion risks) out of the import path.
    match = re.search(r"<kafka\.version>\s*([^<\s]+)\s*</kafka\.version>", POM_PATH.read_text())
    if match is None:
        raise BrokerError(f"{POM_PATH} has no <kafka.version> property")
    return match.group(1)


def default_cache_dir() -> Path:
    """Return the jar cache root: ``$STREAMPLANE_CACHE_DIR`` or ``~/.cache/streamplane``."""
    configured = os.environ.get("STREAMPLANE_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "streamplane"


def find_java() -> str:
    """Return the path of a ``java`` 17+ on ``PATH``.

    Raises:
        BrokerToolMissing: no ``java`` on ``PATH``, or one older than 17.
    """
    java = shutil.which("java")
    if java is None:
        raise BrokerToolMissing("java", f"java not found: {_JAVA_HINT}")
    try:
        # `java -version` prints to stderr; `-XshowSettings` is not needed for the number.
        probe = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerToolMissing("java", f"{java} -version failed ({exc}): {_JAVA_HINT}") from exc
    major = _java_major(probe.stderr + probe.stdout)
    if major is None:
        raise BrokerToolMissing("java", f"{java} -version printed no version: {_JAVA_HINT}")
    if major < MIN_JAVA_MAJOR:
        raise BrokerToolMissing(
            "java", f"java {major} at {java} is too old for Kafka 4: {_JAVA_HINT}"
        )
    return java


def _java_major(version_output: str) -> int | None:
    """Parse the major version from ``java -version`` output (``"1.8.0"`` counts as 8)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:  # Java 8 and older: "1.8.0_392".
        major = int(match.group(2))
    return major


def find_maven() -> str:
    """Return the path of ``mvn`` on ``PATH``.

    Raises:
        BrokerToolMissing: no ``mvn`` on ``PATH``.
    """
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerToolMissing("mvn", f"mvn not found: {_MAVEN_HINT}")
    return mvn


def ensure_jars(cache_dir: Path | None = None) -> Path:
    """Return a folder holding the broker's jars, fetching them with Maven if missing.

    The jars land in ``<cache_dir>/kafka-<version>/libs`` (``cache_dir`` defaults to
    :func:`default_cache_dir`). Maven writes into a staging folder that is renamed into
    place only once complete, so a killed download never leaves a half-filled cache, and
    two processes fetching at once both end up with a complete folder. The folder holds
    the SHA-256 of the pom it came from; when the pom changes (a dependency added, say)
    the jars are fetched again and replace the old ones.

    Raises:
        BrokerToolMissing: the jars are missing and ``java`` 17+ or ``mvn`` is too.
        BrokerStartError: Maven failed; the message carries the tail of its output.
    """
    home = (cache_dir if cache_dir is not None else default_cache_dir()) / (
        f"kafka-{kafka_version()}"
    )
    libs = home / "libs"
    pom_digest = hashlib.sha256(POM_PATH.read_bytes()).hexdigest()
    if _stamp(libs) == pom_digest:
        return libs

    # Maven runs on Java too, so a missing JDK is reported as such rather than as an
    # obscure Maven failure.
    find_java()
    mvn = find_maven()
    home.mkdir(parents=True, exist_ok=True)
    _sweep_stale_staging(home)
    staging = Path(tempfile.mkdtemp(prefix="libs.partial-", dir=home))
    try:
        # Maven runs on a copy of the pom so that nothing (target/, say) is written next
        # to the installed package, which may be read-only.
        pom = staging / "pom.xml"
        shutil.copyfile(POM_PATH, pom)
        fetched = staging / "libs"
        command = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={fetched}",
            "-DincludeScope=runtime",
        ]
        logger.info("fetching Kafka jars", extra={"command": command, "into": str(libs)})
        started = time.monotonic()
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=_MAVEN_TIMEOUT_S,
                check=False,
                cwd=staging,
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerStartError(
                f"mvn did not finish fetching the Kafka jars within {_MAVEN_TIMEOUT_S:.0f} s"
            ) from exc
        if result.returncode != 0:
            raise BrokerStartError(
                f"mvn failed to fetch the Kafka jars (exit {result.returncode}):\n"
                + _tail_text(result.stdout + result.stderr)
            )
        if not any(fetched.glob("*.jar")):
            raise BrokerStartError(f"mvn succeeded but copied no jars into {fetched}")
        (fetched / _POM_STAMP).write_text(pom_digest + "\n")
        if libs.exists():
            # Jars from another pom: move them aside (into staging, removed below) so the
            # rename can put the new folder in their place.
            with contextlib.suppress(OSError):
                libs.rename(staging / "retired")
        try:
            fetched.rename(libs)
        except OSError:
            # Another process finished first; its folder is as good as ours.
            if _stamp(libs) != pom_digest:
                raise
        logger.info(
            "fetched Kafka jars",
            extra={"into": str(libs), "seconds": round(time.monotonic() - started, 1)},
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return libs


def _stamp(libs: Path) -> str | None:
    """Return the pom digest a jar folder was fetched for, or None if there is none."""
    try:
        return (libs / _POM_STAMP).read_text().strip()
    except OSError:
        return None


def _sweep_stale_staging(home: Path) -> None:
    """Remove staging folders left by downloads that were killed long ago."""
    now = time.time()
    for leftover in home.glob("libs.partial-*"):
        with contextlib.suppress(OSError):
            if now - leftover.stat().st_mtime > _STALE_STAGING_S:
                shutil.rmtree(leftover, ignore_errors=True)


# --------------------------------------------------------------------------------- broker


class EmbeddedBroker:
    """A single-node Apache Kafka broker (combined broker+controller, KRaft) in a JVM.

    Nothing happens until :meth:`start` (or ``with``): the constructor only records
    settings. The data dir keeps the cluster id and the log dir, so a broker started
    again on the same folder keeps its topics and committed offsets.

    Args:
        data_dir: Folder for the log dir, the generated configs and the log.
        port: Client (PLAINTEXT) port; 0 picks a free one on each start.
        controller_port: KRaft controller port; ``None`` or 0 picks a free one.
        host: Loopback address both listeners bind and advertise.
        heap: The JVM's ``-Xmx``; 768m serves test traffic on a 2-core machine.
        log_file: Where the JVM's output goes (WARN and above); defaults to
            ``<data_dir>/broker.log``.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int = 9092,
        controller_port: int | None = None,
        host: str = "127.0.0.1",
        heap: str = "768m",
        log_file: Path | None = None,
    ) -> None:
        self._data_dir = Path(data_dir)
        self._requested_port = port
        self._requested_controller_port = controller_port
        self._host = host
        self._heap = heap
        self._log_file = Path(log_file) if log_file is not None else self._data_dir / "broker.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._controller_port: int | None = None

    # -- context manager

    def __enter__(self) -> EmbeddedBroker:
        """Start the broker (see :meth:`start`) and return it."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the broker (see :meth:`stop`)."""
        self.stop()

    # -- properties

    @property
    def bootstrap(self) -> str:
        """The ``host:port`` clients bootstrap from; only valid while started."""
        if self._port is None:
            raise BrokerError("the embedded broker has not been started")
        return f"{self._host}:{self._port}"

    @property
    def port(self) -> int:
        """The client port actually bound (useful when 0 was requested)."""
        if self._port is None:
            raise BrokerError("the embedded broker has not been started")
        return self._port

    @property
    def data_dir(self) -> Path:
        """The folder holding the log dir, the configs and (by default) the log."""
        return self._data_dir

    @property
    def log_file(self) -> Path:
        """The file the broker's JVM writes its output to."""
        return self._log_file

    @property
    def pid(self) -> int | None:
        """The JVM's process id while it runs, else ``None``."""
        return self._process.pid if self.is_running and self._process is not None else None

    @property
    def is_running(self) -> bool:
        """Whether the broker's JVM is alive."""
        return self._process is not None and self._process.poll() is None

    # -- lifecycle

    def start(self, timeout: float = 90) -> str:
        """Start the broker and return its bootstrap ``host:port`` once it answers.

        Fetches the jars first if needed (not counted in ``timeout``), formats the log
        dir on the first start, then waits until an admin client sees the broker in the
        cluster metadata, which in KRaft means it is registered and unfenced.

        Raises:
            BrokerToolMissing: ``java`` 17+ (or, for a first download, ``mvn``) is missing.
            BrokerStartError: the jars could not be fetched, formatting failed, the JVM
                exited early, or it did not answer within ``timeout`` seconds.
        """
        if self.is_running:
            raise BrokerError(f"the embedded broker is already running at {self.bootstrap}")
        java = find_java()
        libs = ensure_jars()
        self._data_dir.mkdir(parents=True, exist_ok=True)
        self._log_file.parent.mkdir(parents=True, exist_ok=True)

        port = self._requested_port or _free_port(self._host)
        controller_port = self._requested_controller_port or _free_port(self._host, avoid={port})
        properties = self._write_server_properties(port, controller_port)
        log4j = self._write_log4j_config()
        classpath = f"{libs}{os.sep}*"
        if not (self._data_dir / _LOG_DIR_NAME / "meta.properties").exists():
            self._format(java, classpath, properties, log4j)

        command = [
            java,
            f"-Xmx{self._heap}",
            # Kafka's own launch script uses G1 with short pauses; keep its choices.
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            # A broker out of heap should die loudly rather than limp on.
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={self._data_dir}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(properties),
        ]
        with self._log_file.open("ab") as log:
            # The JVM gets its own session so a Ctrl-C in the terminal reaches only us,
            # and we stop the broker in order instead of it dying mid-test.
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._data_dir,
                start_new_session=True,
            )
        self._port = port
        self._controller_port = controller_port
        logger.info(
            "embedded Kafka starting",
            extra={
                "pid": self._process.pid,
                "bootstrap": self.bootstrap,
                "log": str(self._log_file),
            },
        )
        try:
            self._wait_ready(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise
        return self.bootstrap

    def stop(self, timeout: float = 30) -> None:
        """Stop the broker: SIGTERM (a controlled shutdown), then SIGKILL after ``timeout``.

        Safe to call when not started or already stopped.
        """
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "embedded Kafka ignored SIGTERM; killing it",
                    extra={"pid": process.pid, "timeout_s": timeout},
                )
                process.kill()
                process.wait()
        self._process = None
        self._port = None
        self._controller_port = None

    def kill(self) -> None:
        """SIGKILL the broker without a controlled shutdown (for fault tests)."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
            process.wait()
        self._process = None
        self._port = None
        self._controller_port = None

    # -- internals

    def _cluster_id(self) -> str:
        """Return the cluster id kept in the data dir, creating it on first use."""
        # A formatted log dir is the authority (the readiness check compares against
        # what the broker reports); the side file only carries the id until formatting.
        meta = self._data_dir / _LOG_DIR_NAME / "meta.properties"
        if meta.exists():
            match = re.search(r"^cluster\.id=(\S+)", meta.read_text(), re.MULTILINE)
            if match is not None:
                return match.group(1)
        path = self._data_dir / _CLUSTER_ID_FILE
        if path.exists():
            return path.read_text().strip()
        cluster_id = _new_cluster_id()
        path.write_text(cluster_id + "\n")
        return cluster_id

    def _write_server_properties(self, port: int, controller_port: int) -> Path:
        """Write ``server.properties`` for this start's ports and return its path."""
        host = self._host
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
            "log.dirs": str(self._data_dir / _LOG_DIR_NAME),
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
        path = self._data_dir / "server.properties"
        path.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        return path

    def _write_log4j_config(self) -> Path:
        """Write the log4j2 config (WARN and above, to the JVM's redirected stdout)."""
        path = self._data_dir / "log4j2.properties"
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
        return path

    def _format(self, java: str, classpath: str, properties: Path, log4j: Path) -> None:
        """Format the KRaft log dir as a standalone single-voter cluster."""
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
            self._cluster_id(),
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
                cwd=self._data_dir,
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerStartError(
                f"formatting {self._data_dir} did not finish within {_FORMAT_TIMEOUT_S:.0f} s"
            ) from exc
        if result.returncode != 0:
            raise BrokerStartError(
                f"formatting the KRaft log dir in {self._data_dir} failed "
                f"(exit {result.returncode}):\n" + _tail_text(result.stdout + result.stderr)
            )

    def _wait_ready(self, deadline: float) -> None:
        """Wait until the broker is in the cluster metadata, or raise BrokerStartError."""
        process = self._process
        assert process is not None  # start() sets it just before calling us
        assert self._port is not None
        cluster_id = self._cluster_id()
        admin: AdminClient | None = None
        while True:
            returncode = process.poll()
            if returncode is not None:
                raise BrokerStartError(
                    f"embedded Kafka exited with {returncode} while starting; "
                    f"tail of {self._log_file}:\n{_tail_file(self._log_file)}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerStartError(
                    f"embedded Kafka did not answer on {self.bootstrap} in time; "
                    f"tail of {self._log_file}:\n{_tail_file(self._log_file)}"
                )
            # A plain TCP probe until the port listens: an admin client created earlier
            # would log a "connection refused" line per retry to our stderr.
            if admin is None and _port_open(self._host, self._port, min(remaining, 1.0)):
                admin = AdminClient({"bootstrap.servers": self.bootstrap})
            if admin is not None:
                # Short tries: a broker that is up answers in milliseconds, and the loop
                # must come back to poll() soon to notice a JVM that exited.
                try:
                    metadata = admin.list_topics(timeout=min(remaining, 1.0))
                except KafkaException:
                    metadata = None
                # Only registered, unfenced brokers appear in the metadata, so an entry
                # means topics can be created and written now. The cluster id proves the
                # answer came from our JVM and not from another broker already holding
                # the port (ours will then fail to bind and exit, reported above).
                if metadata is not None and metadata.brokers and metadata.cluster_id == cluster_id:
                    return
            # Waiting on the process doubles as the poll interval and notices an early exit.
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=min(0.2, max(deadline - time.monotonic(), 0.01)))


def _new_cluster_id() -> str:
    """Make a cluster id the way Kafka's ``Uuid.randomUuid`` prints one.

    URL-safe base64 of 16 random bytes without padding; ids starting with ``-`` are
    skipped because the command line would read them as an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _free_port(host: str, avoid: set[int] | None = None) -> int:
    """Return a port the OS says is free on ``host`` now (another process may race us)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if not avoid or port not in avoid:
            return port


def _port_open(host: str, port: int, timeout: float) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=max(timeout, 0.05)):
            return True
    except OSError:
        return False


def _tail_text(text: str, lines: int = 40) -> str:
    """Return the last ``lines`` lines of ``text``."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _tail_file(path: Path, lines: int = 30, max_bytes: int = 256 * 1024) -> str:
    """Return the last ``lines`` log lines of a possibly large file, stack frames left out.

    Java stack frames (indented ``at ...`` and ``... N more`` lines) would push the
    messages that say what went wrong ("Address already in use") out of a short tail;
    the ``Caused by:`` lines stay.
    """
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(size - max_bytes, 0))
            data = handle.read()
    except OSError as exc:
        return f"(could not read {path}: {exc})"
    text = data.decode("utf-8", errors="replace")
    kept = [line for line in text.splitlines() if line.strip() and not line[:1].isspace()]
    return "\n".join(kept[-lines:])


# ------------------------------------------------------------------------------ foreground


def run_broker(data_dir: Path, port: int) -> int:
    """Run a broker in the foreground until SIGTERM or SIGINT; the ``streamplane broker`` body.

    Prints exactly one line, ``bootstrap: HOST:PORT``, to stdout once the broker answers,
    then blocks. Returns 0 after a clean stop on a signal, 1 if the broker died on its
    own, and 128 + signal number if a signal arrived before the broker was ready.

    Raises:
        BrokerToolMissing: ``java`` 17+ or ``mvn`` is missing.
        BrokerStartError: the broker could not be started.
    """
    stop_requested = threading.Event()
    received: list[int] = []
    started = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        stop_requested.set()
        if not started:
            # Interrupt start()'s wait; its cleanup stops the half-started JVM.
            raise KeyboardInterrupt

    previous = {
        signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)
    }
    broker = EmbeddedBroker(data_dir, port=port)
    try:
        try:
            bootstrap = broker.start()
        except KeyboardInterrupt:
            return 128 + (received[0] if received else signal.SIGINT)
        started = True
        print(f"bootstrap: {bootstrap}", flush=True)
        while not stop_requested.wait(timeout=1.0):
            if not broker.is_running:
                print(
                    f"embedded Kafka exited unexpectedly; see {broker.log_file}",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
        return 0
    finally:
        broker.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
