"""The bench's processes: one supervisor and its workers (and mesh nodes) per run.

Started with the shared child-process helper (:mod:`streamplane.processes`); the
supervisor's ports come from its readiness file, not from its log.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from streamplane import processes
from streamplane.config import KafkaSettings, Settings
from streamplane.dev.bench.exceptions import BenchError
from streamplane.dev.bench.limits import READY_TIMEOUT_S, STOP_TIMEOUT_S
from streamplane.dev.bench.rss import RssSampler
from streamplane.platform.supervisor.readiness import SupervisorNotReady, wait_ready

if TYPE_CHECKING:
    from streamplane.dev.bench.routes import Route

__all__ = ["Child", "Fleet", "MeshLayout", "child_env"]

logger = logging.getLogger(__name__)

_KAFKA_FIELDS = tuple(name for name in KafkaSettings.model_fields if name.startswith("kafka_"))


@dataclass(frozen=True, slots=True)
class Child:
    """One `streamplane` subprocess and the file its output goes to."""

    role: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        """The last lines of its output."""
        return processes.tail_file(self.log, lines, max_bytes=32_768)


class Fleet:
    """One supervisor and its workers for one run; leaving the `with` stops them all."""

    def __init__(
        self,
        route: Route,
        env: dict[str, str],
        logs: Path,
        rss: RssSampler,
        on_stopped: Callable[[int], None],
    ) -> None:
        self._route = route
        self._env = env
        self._logs = logs
        self._rss = rss
        self._on_stopped = on_stopped
        self._children: list[Child] = []
        self._grpc_port = 0
        self._http_port = 0
        self._worker_metrics_ports: list[int] = []

    def __enter__(self) -> Fleet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._on_stopped(self.stop())

    def start(
        self,
        workers: int,
        supervisor_env: Mapping[str, str] | None = None,
        worker_env: Mapping[str, str] | None = None,
    ) -> None:
        """Start the supervisor, wait for its ports, then start the workers."""
        self.start_supervisor(supervisor_env)
        self.start_workers(workers, worker_env)

    def start_supervisor(self, supervisor_env: Mapping[str, str] | None = None) -> None:
        """Start the supervisor and wait for its ports (it consumes from then on)."""
        r = self._route
        ready_file = self._logs / f"{r.name}-supervisor.ready"
        ready_file.unlink(missing_ok=True)
        supervisor = self._spawn(
            "supervisor",
            **(supervisor_env or {}),
            INPUT_TOPIC=r.input,
            OUTPUT_TOPIC=r.output,
            DLQ_TOPIC=r.dlq,
            CONSUMER_GROUP=r.group,
            SUPERVISOR_LISTEN="127.0.0.1:0",
            SUPERVISOR_HTTP_LISTEN="127.0.0.1:0",
            SUPERVISOR_READY_FILE=str(ready_file),
        )
        self._grpc_port, self._http_port = self._wait_ports(supervisor, ready_file)

    def start_workers(self, workers: int, worker_env: Mapping[str, str] | None = None) -> None:
        """Start `workers` workers dialling the supervisor started before."""
        r = self._route
        for _ in range(workers):
            # Each worker serves its /metrics (record ages by stage) on a port of its own.
            port = processes.free_port(avoid=self._worker_metrics_ports)
            self._worker_metrics_ports.append(port)
            self._spawn(
                "worker",
                **{**(worker_env or {}), "WORKER_METRICS_LISTEN": f"127.0.0.1:{port}"},
                OUTPUT_TOPIC=r.output,
                DLQ_TOPIC=r.dlq,
                SUPERVISOR_GRPC_ADDR=f"127.0.0.1:{self._grpc_port}",
            )

    def start_mesh(self, mesh: MeshLayout) -> None:
        """Start every mesh node of `mesh` and wait until each serves."""
        for node_id, port in mesh.ports.items():
            child = self._spawn(
                "mesh-node",
                MESH_NODE_ID=node_id,
                MESH_NODE_LISTEN=f"127.0.0.1:{port}",
                MESH_SERVICES_FILE=str(mesh.manifest),
            )
            ready = f"mesh node {node_id} ready".encode()
            deadline = time.monotonic() + READY_TIMEOUT_S
            while ready not in child.log.read_bytes():
                self.check_alive()
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"mesh node {node_id} did not start in {READY_TIMEOUT_S:.0f} s"
                    )
                time.sleep(0.05)

    def wait_ready(self, workers: int) -> tuple[float, int]:
        """Wait until the supervisor holds partitions and `workers` workers hold credit.

        Returns the moment that happened and the records already handled by then.
        """
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            self.check_alive()
            ready = self._ready_workers()
            if ready is not None and len(ready) >= workers:
                return time.monotonic(), sum(int(w["records_done"]) for w in ready)
            if time.monotonic() > deadline:
                raise BenchError(
                    f"the supervisor and {workers} worker(s) were not ready within "
                    f"{READY_TIMEOUT_S:.0f} s"
                )
            time.sleep(0.05)

    def pids(self) -> list[tuple[str, int]]:
        """``(role, pid)`` of every process of the fleet."""
        return [(child.role, child.process.pid) for child in self._children]

    def check_alive(self) -> None:
        """Raise BenchError, with its output's tail, if a process has exited."""
        for child in self._children:
            code = child.process.poll()
            if code is not None:
                raise BenchError(
                    f"{child.role} (pid {child.process.pid}) exited with {code}; "
                    f"tail of {child.log}:\n{child.tail()}"
                )

    def stop(self) -> int:
        """SIGTERM every process (they drain), then SIGKILL stragglers.

        Returns how many did not exit 0 on their own. A second Ctrl-C while draining
        stops the waiting, but nothing survives us.
        """
        try:
            codes = processes.stop_all([c.process for c in self._children], STOP_TIMEOUT_S)
        finally:
            for child in self._children:
                self._rss.unwatch(child.process.pid)
        unclean = 0
        for child, code in zip(self._children, codes, strict=True):
            if code != 0:
                unclean += 1
                logger.warning(
                    "a bench process did not stop cleanly",
                    extra={"role": child.role, "code": code, "log": str(child.log)},
                )
        return unclean

    def _spawn(self, role: str, **variables: str) -> Child:
        index = len(self._children)
        log = self._logs / f"{self._route.name}-{index}-{role}.log"
        process = processes.spawn(
            processes.streamplane_argv(role),
            env={**self._env, **variables},
            output=log,
            # No .env file here: the children run with the defaults.
            cwd=self._logs,
            # Ctrl-C reaches the bench only; it stops the children in order.
            own_session=True,
        )
        child = Child(role, process, log)
        self._children.append(child)
        self._rss.watch(role, process.pid)
        return child

    def _wait_ports(self, supervisor: Child, ready_file: Path) -> tuple[int, int]:
        """The supervisor's gRPC and HTTP ports, from its readiness file."""
        try:
            ready = wait_ready(
                ready_file,
                READY_TIMEOUT_S,
                pid=supervisor.process.pid,
                alive=lambda: supervisor.process.poll() is None,
            )
        except SupervisorNotReady as exc:
            self.check_alive()  # an exit says more, with the log's tail
            raise BenchError(f"the supervisor did not start: {exc}") from exc
        return ready.grpc_port, ready.http_port

    def status(self) -> dict[str, Any]:
        """The supervisor's /v1/status document."""
        status: dict[str, Any] = get_json(f"http://127.0.0.1:{self._http_port}/v1/status")
        return status

    def metrics(self) -> list[str]:
        """The /metrics text of the supervisor and of every worker."""
        ports = [self._http_port, *self._worker_metrics_ports]
        return [get_text(f"http://127.0.0.1:{port}/metrics") for port in ports]

    def _ready_workers(self) -> list[dict[str, Any]] | None:
        """Workers holding credit, or None while the supervisor is not ready."""
        base = f"http://127.0.0.1:{self._http_port}"
        try:
            get_json(f"{base}/readyz")  # 503 (an HTTPError) until partitions are assigned
            workers: list[dict[str, Any]] = get_json(f"{base}/v1/workers")["workers"]
        except (urllib.error.URLError, OSError):
            return None
        return [w for w in workers if w["available_credit"] or w["in_flight"] or w["acks"]]


@dataclass(frozen=True, slots=True)
class MeshLayout:
    """A hub and a worker node on free local ports, and their manifest file."""

    manifest: Path
    ports: dict[str, int]

    @classmethod
    def create(cls, workdir: Path) -> MeshLayout:
        """Pick ports and write the manifest (hub, and a worker node serving `default`)."""
        hub = processes.free_port()
        ports = {"hub": hub, "worker": processes.free_port(avoid={hub})}
        doc = {
            "nodes": [
                {"id": "hub", "role": "hub", "endpoint": f"127.0.0.1:{ports['hub']}"},
                {
                    "id": "worker",
                    "role": "worker",
                    "endpoint": f"127.0.0.1:{ports['worker']}",
                    "domains": ["default"],
                },
            ]
        }
        folder = workdir / "mesh"
        folder.mkdir(parents=True, exist_ok=True)
        manifest = folder / "services.json"
        manifest.write_text(json.dumps(doc))
        return cls(manifest, ports)

    def supervisor_env(self) -> dict[str, str]:
        """The supervisor publishes through the hub (one forward, as in production)."""
        return {
            "MESH_PUBLISH_ENDPOINT": f"127.0.0.1:{self.ports['hub']}",
            "MESH_SOURCE_NODE": "supervisor",
            "MESH_PUBLISH_DOMAIN": "default",
            "MESH_SERVICES_FILE": str(self.manifest),
        }

    def worker_env(self) -> dict[str, str]:
        """Workers subscribe at the worker node."""
        return {"MESH_ENDPOINT": f"127.0.0.1:{self.ports['worker']}", "MESH_DOMAIN": "default"}


def get_json(url: str) -> Any:
    """GET a JSON document from the local supervisor."""
    return json.loads(get_text(url))


def get_text(url: str) -> str:
    """GET a text document from a local process."""
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - http://127.0.0.1
        body: bytes = response.read()
        return body.decode()


def child_env(settings: Settings) -> dict[str, str]:
    """The environment of the children: ours without streamplane settings, plus Kafka's.

    The Kafka settings go through the environment rather than flags so that secrets
    never show in the process list.
    """
    env = processes.clean_env()
    for name in _KAFKA_FIELDS:
        value = getattr(settings.kafka, name)
        if value is not None:
            plain = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
            env[name.upper()] = plain
    return env
