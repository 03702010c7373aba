"""``make run``: the product's main command, exactly as a user types it, in a fresh clone.

It starts the broker, ``dagster dev`` and the demo producer; the test waits for the UI
and for the first worker run the lag sensor starts, pastes docs/dagster.md's
``dagster job launch`` example after the ``export DAGSTER_HOME=...`` line the banner
printed (its run must start), then presses Ctrl-C (SIGINT to the command's process
group, as a terminal does) and checks that everything stopped: no broker, no Dagster
service, no supervisor or worker left behind, and in the instance no run left active,
canceling or failed by the stop. The stop's duration is printed, never asserted.

It runs in a fresh ``git clone`` of this repository with every default: the data folder
``.data/dagster-dev`` relative to the clone, the default ports (skipped, or failed under
STREAMPLANE_REQUIRE_ALL=1, when one is taken). Nothing is reinstalled: the clone's
``.venv`` is a symlink to this checkout's environment and make gets
``-o .venv/.installed`` (see :mod:`tests.readme.clone`).
"""

from __future__ import annotations

import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from tests.readme.clone import (
    ctrl_c,
    fresh_clone,
    leftovers,
    require_defaults_free,
    start,
    user_env,
)
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


def docs_launch_command(clone: Path) -> str:
    """The ``dagster job launch`` example of docs/dagster.md, as a user would paste it."""
    text = (clone / "docs" / "dagster.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    (command,) = [b for b in blocks if b.startswith("dagster job launch")]
    return command


def hand_launched_worker_runs(home: Path) -> list[DagsterRunStatus]:
    """Statuses of worker runs no sensor launched."""
    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(RunsFilter(job_name="worker_job"))
        return [r.status for r in runs if "dagster/sensor_name" not in r.tags]


BAD_AFTER_STOP = {
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
    DagsterRunStatus.FAILURE,
}


def run_statuses(home: Path) -> dict[str, list[DagsterRunStatus]]:
    with DagsterInstance.from_config(str(home)) as instance:
        statuses: dict[str, list[DagsterRunStatus]] = {}
        for run in instance.get_runs():
            statuses.setdefault(run.job_name, []).append(run.status)
        return statuses


def failures(home: Path) -> str:
    """Why each failed run failed, from its event log (for the assertion message)."""
    lines = []
    with DagsterInstance.from_config(str(home)) as instance:
        for run in instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.FAILURE])):
            for entry in instance.all_logs(run.run_id):
                event = entry.dagster_event
                if event is not None and event.is_failure:
                    lines.append(f"{run.job_name} {run.run_id}: {entry.message}")
    return "\n".join(lines)


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
        exports = re.findall(r"^\s*(export DAGSTER_HOME=.+)$", log.read_text(), flags=re.M)
        assert exports, f"the banner printed no DAGSTER_HOME export\n{tail()}"
        pasted = subprocess.run(
            ["bash", "-c", f"{exports[0]}\n{docs_launch_command(clone)}"],
            cwd=clone,
            env=user_env(clone),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert pasted.returncode == 0, pasted.stdout + pasted.stderr
        wait_until(
            lambda: DagsterRunStatus.STARTED in hand_launched_worker_runs(home),
            240,
            interval=2,
            message=lambda: f"the pasted launch never ran: {hand_launched_worker_runs(home)}",
        )
    finally:
        began = time.monotonic()
        ctrl_c(make, 180)
        print(f"make run stopped {time.monotonic() - began:.1f} s after Ctrl-C")
    assert "streamplane (Dagster) stopped" in log.read_text(), tail()
    statuses = run_statuses(home)
    print(f"runs after the stop: {statuses}")
    bad = {job: [s for s in ss if s in BAD_AFTER_STOP] for job, ss in statuses.items()}
    assert not any(bad.values()), (
        f"runs left unfinished or failed by the stop: {statuses}\n{failures(home)}\n{tail()}"
    )
    wait_until(
        lambda: not leftovers(clone),
        30,
        interval=1,
        message=lambda: f"processes left behind: {leftovers(clone)}",
    )
