"""``make run``: the product's main command, exactly as a user types it, in a fresh clone.

It starts the broker, ``dagster dev`` and the demo producer; the test waits for the UI
and for the first worker run the lag sensor starts, then presses Ctrl-C (SIGINT to the
command's process group, as a terminal does) and checks that everything stopped: no
broker, no Dagster service, no run, no supervisor or worker left behind.

It runs in a fresh ``git clone`` of this repository with every default: the data folder
``.data/dagster-dev`` relative to the clone, the default ports (skipped, or failed under
STREAMPLANE_REQUIRE_ALL=1, when one is taken). Nothing is reinstalled: the clone's
``.venv`` is a symlink to this checkout's environment and make gets
``-o .venv/.installed`` (see :mod:`tests.readme.clone`).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from tests.readme.clone import ctrl_c, fresh_clone, leftovers, require_defaults_free, start
from tests.support.deadline import wait_until

pytestmark = pytest.mark.kafka

UI_PORT = 3000


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


@pytest.mark.timeout(900)
def test_make_run_starts_the_dagster_face_and_stops_cleanly(tmp_path: Path) -> None:
    require_defaults_free(9092, UI_PORT, 7000, 8080)
    clone = fresh_clone(tmp_path)
    log = tmp_path / "make-run.log"
    make = start(["make", "-o", ".venv/.installed", "run"], clone, log)

    def tail() -> str:
        return log.read_text(errors="replace")[-4000:]

    try:
        wait_until(
            lambda: ui_up(UI_PORT) or make.poll() is not None,
            600,
            interval=1,
            message=lambda: f"the Dagster UI never answered\n{tail()}",
        )
        assert make.poll() is None, f"make run exited with {make.returncode}\n{tail()}"
        assert "streamplane (Dagster) is running" in log.read_text()
        home = clone / ".data" / "dagster-dev" / "dagster-home"
        wait_until(
            lambda: started_worker_runs(home) > 0,
            240,
            interval=2,
            message=lambda: f"the lag sensor started no worker run\n{tail()}",
        )
    finally:
        ctrl_c(make, 180)
    assert "streamplane (Dagster) stopped" in log.read_text(), tail()
    wait_until(
        lambda: not leftovers(clone),
        30,
        interval=1,
        message=lambda: f"processes left behind: {leftovers(clone)}",
    )
