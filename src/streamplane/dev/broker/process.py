"""The embedded broker's process: one JVM, started, waited for and stopped in order.

:class:`EmbeddedBroker` formats a KRaft log dir on its first start (:mod:`.kraft`),
launches ``kafka.Kafka`` on the jars of :mod:`.jars` and waits until the broker is in
the cluster metadata. The data dir is made absolute once, in the constructor.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

from streamplane import processes
from streamplane.dev.broker import kraft
from streamplane.dev.broker.jars import ensure_jars, find_java
from streamplane.platform.kafka.admin import ClusterInfo, MetadataProbe
from streamplane.platform.kafka.exceptions import (
    BrokerError,
    BrokerStartError,
    KafkaPlatformError,
)

__all__ = ["EmbeddedBroker"]

logger = logging.getLogger(__name__)


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
        # Absolute once, here: the JVM and Kafka's tools run with the data dir as cwd.
        self._data_dir = Path(data_dir).expanduser().absolute()
        self._requested_port = port
        self._requested_controller_port = controller_port
        self._host = host
        self._heap = heap
        self._log_file = (
            Path(log_file).expanduser().absolute()
            if log_file is not None
            else self._data_dir / "broker.log"
        )
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

        host, data_dir = self._host, self._data_dir
        port = self._requested_port or processes.free_port(host)
        controller_port = self._requested_controller_port or processes.free_port(host, avoid={port})
        properties = kraft.write_properties(data_dir, host, port, controller_port)
        log4j = kraft.write_log4j(data_dir)
        classpath = f"{libs}{os.sep}*"
        if not kraft.is_formatted(data_dir):
            kraft.format_log_dir(data_dir, java, classpath, properties, log4j)
        _check_log_dir_free(data_dir / kraft.LOG_DIR_NAME)

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
        # The JVM gets its own session so a Ctrl-C in the terminal reaches only us, and
        # we stop the broker in order instead of it dying mid-test. It gets SIGTERM when
        # we die, even by SIGKILL, so no orphan JVM keeps serving the data dir (Linux
        # sends it when the *thread* that started it ends: start from a lasting thread).
        self._process = processes.spawn(
            command,
            output=self._log_file,
            append=True,
            cwd=data_dir,
            own_session=True,
            die_with_parent=True,
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
            status = processes.stop(process, timeout)
            if status == -signal.SIGKILL:
                logger.warning(
                    "embedded Kafka ignored SIGTERM; killed it",
                    extra={"pid": process.pid, "timeout_s": timeout},
                )
        self._forget()

    def kill(self) -> None:
        """SIGKILL the broker without a controlled shutdown (for fault tests)."""
        if self._process is not None:
            processes.kill(self._process)
        self._forget()

    def _forget(self) -> None:
        self._process = None
        self._port = None
        self._controller_port = None

    # -- internals

    def _log_tail(self) -> str:
        # Java stack frames would push the lines that say what went wrong ("Address
        # already in use") out of a short tail; the "Caused by:" lines stay.
        return processes.tail_file(self._log_file, frames=False)

    def _wait_ready(self, deadline: float) -> None:
        """Wait until the broker is in the cluster metadata, or raise BrokerStartError."""
        process = self._process
        assert process is not None  # start() sets it just before calling us
        assert self._port is not None
        cluster_id = kraft.cluster_id(self._data_dir)
        probe: MetadataProbe | None = None
        while True:
            returncode = process.poll()
            if returncode is not None:
                raise BrokerStartError(
                    f"embedded Kafka exited with {returncode} while starting; "
                    f"tail of {self._log_file}:\n{self._log_tail()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerStartError(
                    f"embedded Kafka did not answer on {self.bootstrap} in time; "
                    f"tail of {self._log_file}:\n{self._log_tail()}"
                )
            # A plain TCP probe until the port listens: an admin client created earlier
            # would log a "connection refused" line per retry to our stderr.
            if probe is None and processes.port_open(self._host, self._port, min(remaining, 1.0)):
                probe = MetadataProbe({"bootstrap.servers": self.bootstrap})
            if probe is not None:
                # Short tries: a broker that is up answers in milliseconds, and the loop
                # must come back to poll() soon to notice a JVM that exited.
                cluster: ClusterInfo | None
                try:
                    cluster = probe.describe(timeout=min(remaining, 1.0))
                except KafkaPlatformError:
                    cluster = None
                # Only registered, unfenced brokers appear in the metadata, so an entry
                # means topics can be created and written now. The cluster id proves the
                # answer came from our JVM and not from another broker already holding
                # the port (ours will then fail to bind and exit, reported above).
                if cluster is not None and cluster.brokers and cluster.cluster_id == cluster_id:
                    return
            # Waiting on the process doubles as the poll interval and notices an early exit.
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=min(0.2, max(deadline - time.monotonic(), 0.01)))


def _check_log_dir_free(log_dir: Path) -> None:
    """Fail when another process (an orphan JVM, a second broker) serves this log dir.

    Kafka holds a POSIX lock on ``<log dir>/.lock`` while it runs. A JVM started on a
    locked dir would exit, but only after our readiness probe might have seen the other
    broker answer on the same port with the same cluster id and reported it as ours.
    """
    lock = log_dir / ".lock"
    if not lock.exists():
        return
    with lock.open("rb+") as handle:
        try:
            # lockf is fcntl(F_SETLK), the lock Java's FileChannel.tryLock takes on Linux.
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _lock_holder(lock)
            raise BrokerStartError(
                f"the data dir {log_dir.parent} is in use: another process"
                f"{f' (pid {holder})' if holder else ''} holds Kafka's lock on {lock}; "
                "stop it, or start this broker on another --data-dir"
            ) from None
        fcntl.lockf(handle, fcntl.LOCK_UN)


def _lock_holder(lock: Path) -> int | None:
    """The pid holding a POSIX lock on ``lock``, from /proc/locks (Linux), if known."""
    try:
        inode = lock.stat().st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        # "1: POSIX  ADVISORY  WRITE 4242 08:01:1234567 0 EOF"
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "POSIX" and fields[5].endswith(f":{inode}"):
            return int(fields[4]) if fields[4].isdigit() else None
    return None
