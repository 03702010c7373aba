"""Real streamplane processes for end-to-end tests: start, wait, signal, always clean up.

Every process is ``streamplane ...`` with this interpreter and an explicit environment
(settings variables inherited from the runner's shell are dropped, so a stray
KAFKA_BROKERS cannot leak in) and its stdout/stderr in log files under the test's
folder. A :class:`Processes` group owns them: whatever the test's outcome, it stops
every process it started (SIGTERM, then SIGKILL after a grace period). A supervisor
reports its ports through its readiness file (SUPERVISOR_READY_FILE).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamplane import processes as children
from streamplane.platform.supervisor.readiness import SupervisorNotReady, wait_ready
from streamplane.processes import free_port
from streamplane.testing.deadline import wait_until

__all__ = [
    "LOG_TAIL_CHARS",
    "Proc",
    "Processes",
    "SupervisorProc",
    "base_env",
    "free_port",
    "processes",
]

# Not settings, but read by the tests' processors; never inherited from the outer shell.
_EXTRA_VARS = ("SLOW_TASK_SECONDS",)

# How much of each log a failing test's report shows.
LOG_TAIL_CHARS = 6000


def base_env(
    extra: Mapping[str, str | int | float], pythonpath: Sequence[Path] = ()
) -> dict[str, str]:
    """The runner's environment without streamplane settings, plus ``extra`` as strings.

    ``pythonpath`` goes in front of PYTHONPATH (so children can load test processors).
    """
    env = children.clean_env(drop=_EXTRA_VARS)
    paths = [str(path) for path in pythonpath]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


@dataclass
class Proc:
    """One started streamplane process and its log files."""

    name: str
    args: list[str]
    popen: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    env: dict[str, str] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def log(self) -> str:
        """Stdout and stderr together (the structured log goes to stderr)."""
        return self.stdout() + self.stderr()

    def tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        out, err = self.stdout()[-chars:], self.stderr()[-chars:]
        return (
            f"--- {self.name} (pid {self.pid}, rc {self.returncode}) {self.stderr_path.parent}\n"
            f"[stdout]\n{out}\n[stderr]\n{err}"
        )

    def kill(self) -> int:
        """SIGKILL and reap; returns the exit status (-9 when it was still running)."""
        return children.kill(self.popen)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM and wait for exit; fails (after a SIGKILL) if it takes over `timeout`."""
        if not self.alive():
            return self.popen.wait()
        status = children.stop(self.popen, timeout)
        if status == -signal.SIGKILL:
            raise AssertionError(
                f"{self.name} did not exit within {timeout:g} s of SIGTERM\n{self.tail()}"
            )
        return status

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit on its own; returns its status."""
        status = children.wait_for(self.popen, timeout)
        if status is None:
            raise AssertionError(f"{self.name} still running after {timeout:g} s\n{self.tail()}")
        return status

    def wait_log(self, needle: str, timeout: float = 30) -> None:
        """Wait until `needle` appears in the process's stdout or stderr."""
        wait_until(
            lambda: needle in self.log(),
            timeout,
            interval=0.05,
            message=lambda: f"{self.name} never logged {needle!r}\n{self.tail()}",
        )


@dataclass
class SupervisorProc(Proc):
    """A supervisor, with the ports from its ready line and HTTP helpers."""

    grpc_port: int = 0
    http_port: int = 0

    @property
    def grpc_addr(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def get(
        self, path: str, timeout: float = 5, headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes]:
        """GET `path` from the supervisor's HTTP server; returns (status, body)."""
        url = f"http://127.0.0.1:{self.http_port}{path}"
        request = urllib.request.Request(url, headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()

    def get_json(
        self, path: str, timeout: float = 5, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Any]:
        """GET `path` and decode its JSON body."""
        code, body = self.get(path, timeout, headers)
        return code, json.loads(body)

    def post_json(
        self, path: str, payload: Any, headers: Mapping[str, str] | None = None, timeout: float = 10
    ) -> tuple[int, Any]:
        """POST `payload` as JSON to `path`; returns (status, decoded JSON body)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return int(response.status), json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), json.loads(exc.read())

    def status(self) -> dict[str, Any]:
        """The /v1/status snapshot."""
        code, body = self.get("/v1/status")
        assert code == 200, f"/v1/status answered {code}: {body[:500]!r}"
        result: dict[str, Any] = json.loads(body)
        return result

    def committable(self) -> dict[int, int]:
        """Committable offset per partition, from /v1/status."""
        return {int(k.rpartition("/")[2]): int(v) for k, v in self.status()["committable"].items()}

    def records_done(self) -> int:
        """Records this supervisor has seen durably handled (output or dead-letter)."""
        return int(self.status()["events"]["records_done"])

    def metrics(self) -> str:
        code, body = self.get("/metrics")
        assert code == 200, f"/metrics answered {code}"
        return body.decode()

    def metric(self, name: str) -> float | None:
        """Value of an unlabelled sample `name` in /metrics, or None if absent."""
        match = re.search(rf"^{re.escape(name)} (\S+)$", self.metrics(), re.MULTILINE)
        return float(match.group(1)) if match else None

    def workers(self) -> list[dict[str, Any]]:
        code, body = self.get("/v1/workers")
        assert code == 200, f"/v1/workers answered {code}"
        workers: list[dict[str, Any]] = json.loads(body)["workers"]
        return workers

    def is_ready(self) -> bool:
        try:
            code, _ = self.get("/readyz", timeout=2)
        except OSError:
            return False
        return code == 200

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until /readyz says ready (the consumer holds an assignment)."""
        wait_until(
            lambda: self.alive() and self.is_ready(),
            timeout,
            interval=0.1,
            message=lambda: f"{self.name} never became ready\n{self.tail()}",
        )

    def wait_workers(self, count: int, timeout: float = 30) -> None:
        """Wait until `count` worker sessions are connected."""
        wait_until(
            lambda: len(self.workers()) >= count,
            timeout,
            message=lambda: f"{self.name} has {len(self.workers())} workers, want {count}",
        )


class Processes:
    """Starts streamplane processes for one test and stops all of them at the end."""

    def __init__(self, log_dir: Path, pythonpath: Sequence[Path] = ()) -> None:
        self.log_dir = log_dir
        self.pythonpath = tuple(pythonpath)
        self.procs: list[Proc] = []
        self._names: dict[str, int] = {}

    # -- starting ---------------------------------------------------------------------
    def _spawn(
        self, name: str, command: list[str], env: Mapping[str, str | int | float]
    ) -> tuple[str, list[str], subprocess.Popen[bytes], Path, Path, dict[str, str]]:
        n = self._names.get(name, 0)
        self._names[name] = n + 1
        unique = name if n == 0 else f"{name}-{n}"
        folder = self.log_dir / unique
        folder.mkdir(parents=True, exist_ok=True)
        full_env = base_env(env, self.pythonpath)
        args = children.streamplane_argv(*command)
        stdout_path, stderr_path = folder / "stdout.log", folder / "stderr.log"
        # cwd is the log folder: no docker/streaming/.env from the repo is picked up.
        popen = children.spawn(
            args, env=full_env, output=stdout_path, errors=stderr_path, cwd=folder
        )
        return unique, args, popen, stdout_path, stderr_path, full_env

    def start(self, name: str, command: list[str], env: Mapping[str, str | int | float]) -> Proc:
        """Start `streamplane <command>` (not waiting for anything)."""
        unique, args, popen, out, err, full_env = self._spawn(name, command, env)
        proc = Proc(unique, args, popen, out, err, full_env)
        self.procs.append(proc)
        return proc

    def supervisor(
        self,
        env: Mapping[str, str | int | float],
        name: str = "supervisor",
        ready: bool = True,
        timeout: float = 60,
    ) -> SupervisorProc:
        """Start a supervisor and wait for its readiness file (and, if `ready`, for /readyz).

        SUPERVISOR_LISTEN and SUPERVISOR_HTTP_LISTEN default to 127.0.0.1:0; the chosen
        ports are read from the readiness file (SUPERVISOR_READY_FILE, in its log folder).
        """
        n = self._names.get(name, 0)
        ready_file = self.log_dir / (name if n == 0 else f"{name}-{n}") / "ready.json"
        full = {
            "SUPERVISOR_LISTEN": "127.0.0.1:0",
            "SUPERVISOR_HTTP_LISTEN": "127.0.0.1:0",
            "SUPERVISOR_READY_FILE": str(ready_file),
        }
        full.update({k: str(v) for k, v in env.items()})
        unique, args, popen, out, err, full_env = self._spawn(name, ["supervisor"], full)
        proc = SupervisorProc(unique, args, popen, out, err, full_env)
        self.procs.append(proc)
        try:
            announced = wait_ready(
                Path(full_env["SUPERVISOR_READY_FILE"]), timeout, pid=proc.pid, alive=proc.alive
            )
        except SupervisorNotReady as exc:
            raise AssertionError(f"{unique}: {exc}\n{proc.tail()}") from None
        proc.grpc_port, proc.http_port = announced.grpc_port, announced.http_port
        if ready:
            proc.wait_ready(timeout)
        return proc

    def worker(
        self,
        env: Mapping[str, str | int | float],
        name: str = "worker",
    ) -> Proc:
        """Start a worker (it connects, and reconnects, to SUPERVISOR_GRPC_ADDR)."""
        full = {"RECONNECT_MAX_BACKOFF_S": "1"}
        full.update({k: str(v) for k, v in env.items()})
        full.setdefault("WORKER_ID", f"{name}-{self._names.get(name, 0)}")
        return self.start(name, ["worker"], full)

    def run(
        self,
        name: str,
        command: list[str],
        env: Mapping[str, str | int | float],
        timeout: float = 120,
    ) -> Proc:
        """Run a command to completion (bounded by `timeout`); returns the finished Proc."""
        proc = self.start(name, command, env)
        proc.wait_exit(timeout)
        return proc

    # -- stopping ---------------------------------------------------------------------
    def stop_all(self, grace: float = 10) -> None:
        """SIGTERM whatever still runs, SIGKILL what outlives `grace`, reap everything."""
        children.stop_all([p.popen for p in self.procs], grace)

    def report(self) -> str:
        """Tails of every process's logs, for a failure report."""
        return "\n".join(p.tail() for p in self.procs)


@contextlib.contextmanager
def processes(log_dir: Path, pythonpath: Sequence[Path] = ()) -> Iterator[Processes]:
    """A `Processes` group that is always stopped on exit, even on failure."""
    group = Processes(log_dir, pythonpath)
    try:
        yield group
    finally:
        group.stop_all()
