"""``make run``'s stop (:func:`cancel_active_runs`) on a real local instance.

The runs are stored as the daemon would store them; a thread plays the run workers:
the supervisor drains and ends canceled, and meanwhile a late sensor tick submits a
replacement supervisor (the sensors were turned off while that tick was under way).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from streamplane.config import FaceSettings
from streamplane.dev.dagster_instance import cancel_active_runs, write_instance
from streamplane.jobs import ROLE_TAG, SLOT_TAG
from tests.dagster.test_sensors import add_run
from tests.support.deadline import wait_until


def test_a_run_a_late_tick_submits_during_the_drain_is_canceled(tmp_path: Path) -> None:
    home = tmp_path / "dagster-home"
    write_instance(home, FaceSettings())
    tags = {ROLE_TAG: "supervisor", SLOT_TAG: "0"}
    with DagsterInstance.from_config(str(home)) as instance:
        first = add_run(instance, "supervisor_job", DagsterRunStatus.STARTED, tags)
        late: list[str] = []

        def run_workers() -> None:
            time.sleep(1.0)
            instance.report_run_canceling(first, "terminated by the stop")
            late.append(add_run(instance, "supervisor_job", DagsterRunStatus.QUEUED, tags).run_id)
            time.sleep(1.0)
            instance.report_run_canceled(first, "drained")

        workers = threading.Thread(target=run_workers)
        workers.start()
        cancel_active_runs(home, timeout=15.0)
        workers.join()
        wait_until(lambda: bool(late), 5, message="the late run was never added")
        statuses = {r.run_id: r.status for r in instance.get_runs(RunsFilter())}
    assert statuses == {
        first.run_id: DagsterRunStatus.CANCELED,
        late[0]: DagsterRunStatus.CANCELED,
    }
