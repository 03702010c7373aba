"""``make run``: the product's main command, as a user types it.

It starts the broker, ``dagster dev`` and the demo producer; the test waits for the UI
and for the first worker run the lag sensor starts, then presses Ctrl-C (SIGINT to the
command's process group, as a terminal does) and checks that everything stopped: no
broker, no Dagster service, no run, no supervisor or worker left behind.

Ports and the data folder are the test's own (the variables the README documents), so
a developer's own ``make run`` on the default ports is not disturbed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from streamplane.platform.kafka.broker import find_java, find_maven
from streamplane.platform.kafka.exceptions import BrokerToolMissing
from tests.dagster.services import require
from tests.support.deadline import wait_until
from tests.support.procs import REPO_ROOT, base_env, free_port

pytestmark = pytest.mark.kafka


def kafka_tools_present() -> bool:
    try:
        find_java()
        find_maven()
    except BrokerToolMissing:
        return False
    return True


def ui_up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as r:
            return bool(r.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def started_worker_runs(home: Path) -> int:
    """Worker runs the lag sensor launched that are running now."""
    if not (home / "dagster.yaml").exists():
        return 0
    with DagsterInstance.from_config(str(home)) as instance:
        return instance.get_runs_count(
            RunsFilter(
                job_name="worker_job",
                tags={"dagster/sensor_name": "kafka_lag_sensor"},
                statuses=[DagsterRunStatus.STARTED],
            )
        )


def run_statuses(home: Path) -> dict[str, list[DagsterRunStatus]]:
    with DagsterInstance.from_config(str(home)) as instance:
        statuses: dict[str, list[DagsterRunStatus]] = {}
        for run in instance.get_runs():
            statuses.setdefault(run.job_name, []).append(run.status)
        return statuses


def leftovers(data_dir: Path) -> list[str]:
    """Processes still holding the data folder in their command line or DAGSTER_HOME."""
    found = []
    marker = str(data_dir)
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            home = proc.environ().get("DAGSTER_HOME", "")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if marker in cmdline or home.startswith(marker):
            found.append(f"{proc.pid}: {cmdline[:160]}")
    return found


@pytest.mark.timeout(900)
def test_make_run_starts_the_dagster_face_and_stops_cleanly(tmp_path: Path) -> None:
    require(
        kafka_tools_present(), "java 17+ and maven (apt-get install openjdk-17-jre-headless maven)"
    )
    data_dir = tmp_path / "dev"
    ui_port = free_port()
    env = base_env(
        {
            "STREAMPLANE_DEV_DATA_DIR": str(data_dir),
            "STREAMPLANE_BROKER_PORT": free_port(),
            "DAGSTER_PORT": ui_port,
            "STREAMPLANE_DEV_SUPERVISOR_PORT": free_port(),
            "STREAMPLANE_DEV_HTTP_PORT": free_port(),
        }
    )
    env.pop("DAGSTER_HOME", None)
    log = tmp_path / "make-run.log"
    with log.open("wb") as out:
        make = subprocess.Popen(
            ["make", "run"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def tail() -> str:
        return log.read_text(errors="replace")[-4000:]

    try:
        # A fresh machine builds the environment and fetches the Kafka jars first.
        wait_until(
            lambda: ui_up(ui_port),
            600,
            interval=1,
            message=lambda: f"the Dagster UI never answered\n{tail()}",
        )
        assert "streamplane (Dagster) is running" in log.read_text()
        home = data_dir / "dagster-home"
        wait_until(
            lambda: started_worker_runs(home) > 0,
            240,
            interval=2,
            message=lambda: f"the lag sensor started no worker run\n{tail()}",
        )
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGINT)  # Ctrl-C in the terminal
        try:
            make.wait(180)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            raise AssertionError(
                f"make run did not stop within 180 s of Ctrl-C\n{tail()}"
            ) from None
    assert "streamplane (Dagster) stopped" in log.read_text(), tail()
    wait_until(
        lambda: not leftovers(data_dir),
        30,
        interval=1,
        message=lambda: f"processes left behind: {leftovers(data_dir)}",
    )
