"""Real services for the Dagster face's tests: a Dagster webserver and daemon on a fresh
topic, and the skip-or-fail rule for services a machine may lack.

The stack runs ``dagster-webserver`` and ``dagster-daemon run`` as two processes, each in
a session of its own (so that teardown can stop the run workers they start, and those
drain their supervisor and worker processes), on the repository's ``workspace.yaml`` and
a SQLite instance whose ``dagster.yaml`` is written by ``streamplane.dev.dagster_dev`` (the
same run queue limits ``make run`` uses).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from streamplane.config import FaceSettings
from streamplane.dev.dagster_dev import stop_process_group
from streamplane.dev.dagster_instance import initialize_instance, write_instance
from streamplane.platform.kafka import admin
from tests.support.deadline import wait_until
from tests.support.procs import REPO_ROOT, Processes, Stack, base_env, free_port, produce_demo
from tests.support.topics import fresh_topic_names

BIN = Path(sys.executable).parent
WORKSPACE = REPO_ROOT / "workspace.yaml"

# The stack's backlog and scaling: 20k records at 5k per worker asks for the maximum of
# two workers (a 2-core machine runs two beside the supervisor and Dagster's processes).
BACKLOG = 20_000
BAD_FRACTION = 0.01
PARTITIONS = 6
FACE = {
    # Explicit, so a developer's docker/streaming/.env (the container stack runs its
    # supervisors as services: STREAMPLANE_SUPERVISORS=0) cannot leave the stack without.
    "STREAMPLANE_SUPERVISORS": "1",
    "STREAMPLANE_LAG_SENSOR_INTERVAL_S": "5",
    "STREAMPLANE_LIVENESS_SENSOR_INTERVAL_S": "5",
    "STREAMPLANE_MAX_WORKERS": "2",
    "STREAMPLANE_LAG_PER_WORKER": "5000",
    "STREAMPLANE_WORKER_IDLE_EXIT_S": "10",
    "STREAMPLANE_HEARTBEAT_TIMEOUT_S": "20",
    # Once a year: the snapshot is tested on its own; here it would only add load.
    "STREAMPLANE_SNAPSHOT_CRON": "0 0 1 1 *",
}


def require(available: bool, what: str) -> None:
    """Skip the test when a service is missing, or fail under STREAMPLANE_REQUIRE_ALL=1.

    ``what`` names what to install, e.g. "chromium (apt-get install chromium)".
    """
    if available:
        return
    message = f"{what} is not available"
    if os.environ.get("STREAMPLANE_REQUIRE_ALL") == "1":
        pytest.fail(f"{message} (STREAMPLANE_REQUIRE_ALL=1)")
    pytest.skip(message)


@dataclass
class Service:
    """One started Dagster process and its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, chars: int = 6000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} (pid {self.popen.pid}, rc {self.popen.poll()})\n{text[-chars:]}"


@dataclass
class DagsterStack:
    """A running webserver and daemon, their instance, and the topics they serve."""

    bootstrap: str
    kafka: Stack
    home: Path
    folder: Path
    env: dict[str, str]
    web_port: int
    produced: int
    services: list[Service] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def instance(self) -> DagsterInstance:
        """The stack's instance, opened from its DAGSTER_HOME."""
        return DagsterInstance.from_config(str(self.home))

    def runs(self, **filters: Any) -> list[DagsterRun]:
        """Runs matching ``RunsFilter(**filters)``, newest first."""
        with self.instance() as instance:
            return list(instance.get_runs(RunsFilter(**filters)))

    def run(self, run_id: str) -> DagsterRun:
        with self.instance() as instance:
            found = instance.get_run_by_id(run_id)
        assert found is not None, f"no run {run_id}"
        return found

    def sensor_runs(
        self, sensor: str, statuses: Sequence[DagsterRunStatus] = ()
    ) -> list[DagsterRun]:
        """Runs a sensor launched (tag ``dagster/sensor_name``)."""
        filters: dict[str, Any] = {"tags": {"dagster/sensor_name": sensor}}
        if statuses:
            filters["statuses"] = list(statuses)
        return self.runs(**filters)

    def total_lag(self) -> int:
        conf = {"bootstrap.servers": self.bootstrap}
        return sum(admin.group_lag(conf, self.kafka.topics.group, self.kafka.topics.input).values())

    def command(
        self, args: Sequence[str], timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run a Dagster CLI command against this stack's instance, from the repo root."""
        return subprocess.run(
            list(args),
            env=self.env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST a GraphQL document to the webserver; returns the ``data`` member."""
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer: dict[str, Any] = json.loads(response.read())
        assert "errors" not in answer, answer
        return dict(answer["data"])

    def report(self) -> str:
        return "\n".join(service.tail() for service in self.services)


def _start(name: str, args: list[str], env: dict[str, str], folder: Path) -> Service:
    log = folder / f"{name}.log"
    with log.open("wb") as handle:
        popen = subprocess.Popen(
            args,
            env=env,
            cwd=REPO_ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Service(name, popen, log)


def _web_ready(stack: DagsterStack) -> bool:
    try:
        with urllib.request.urlopen(f"{stack.url}/server_info", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def stack_env(
    bootstrap: str, kafka: Stack, home: Path, folder: Path, web_port: int
) -> dict[str, str]:
    """Environment of the webserver, daemon and every run they launch."""
    grpc_port, http_port = free_port(), free_port()
    return base_env(
        {
            **kafka.env(),
            **FACE,
            "DAGSTER_HOME": str(home),
            "SUPERVISOR_LISTEN": f"127.0.0.1:{grpc_port}",
            "SUPERVISOR_GRPC_ADDR": f"127.0.0.1:{grpc_port}",
            "SUPERVISOR_HTTP_LISTEN": f"127.0.0.1:{http_port}",
            "STREAMPLANE_SNAPSHOT_DIR": str(folder / "snapshots"),
            "DAGSTER_WEB_PORT": str(web_port),
        }
    )


@contextlib.contextmanager
def start_dagster_stack(bootstrap: str, folder: Path) -> Iterator[DagsterStack]:
    """Produce a backlog on fresh topics, then start the webserver and the daemon."""
    kafka = Stack(bootstrap, fresh_topic_names("dg"))
    # 1% malformed, as in the demo: the dead letters show on the dead_letters asset.
    produced, _ = produce_demo(
        Processes(folder / "procs"), kafka, BACKLOG, PARTITIONS, bad_fraction=BAD_FRACTION
    )
    home = folder / "dagster-home"
    face = FaceSettings.model_validate(
        {k.removeprefix("STREAMPLANE_").lower(): v for k, v in FACE.items()}
    )
    write_instance(home, face)
    initialize_instance(home)
    web_port = free_port()
    env = stack_env(bootstrap, kafka, home, folder, web_port)
    stack = DagsterStack(bootstrap, kafka, home, folder, env, web_port, produced)
    workspace = ["-w", str(WORKSPACE)]
    try:
        stack.services.append(
            _start(
                "webserver",
                [
                    str(BIN / "dagster-webserver"),
                    *workspace,
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(web_port),
                ],
                env,
                folder,
            )
        )
        stack.services.append(
            _start("daemon", [str(BIN / "dagster-daemon"), "run", *workspace], env, folder)
        )
        wait_until(
            lambda: _web_ready(stack),
            120,
            interval=0.5,
            message=lambda: f"webserver never answered\n{stack.report()}",
        )
        yield stack
    finally:
        for service in stack.services:
            stop_process_group(service.popen, leader_timeout=30, group_timeout=60)
