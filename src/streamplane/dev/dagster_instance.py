"""The local Dagster instance of `make run`: its config, and how its runs stop cleanly.

`streamplane.dev.dagster_dev` starts Kafka, Dagster and the demo producer; this module
owns the instance they share in `.data/dagster-dev/`: the `dagster.yaml` written for it,
and the stop that turns the sensors off, ends every run the way that leaves it
canceled or succeeded, and turns the sensors back on at the next start.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.scheduler.instigation import InstigatorStatus

from streamplane.config import FaceSettings

# Runs left after that drain on SIGTERM (DRAIN_TIMEOUT_S is 30 s by default).
RUNS_STOP_S = 45.0
# Which sensors and schedules the stop turned off, to turn them on again at the next start.
STOPPED_INSTIGATORS = "stopped-instigators.json"


def instance_config(face: FaceSettings) -> dict[str, Any]:
    """A local instance: the run queue with streamplane's limits, monitoring, no telemetry.

    The tag concurrency limits make extra supervisor launches impossible (one run per
    slot value, ``supervisors`` in all) and bound worker runs by ``max_workers``; other
    runs (the snapshot) are not limited beyond ``max_concurrent_runs``.
    """
    return {
        "run_queue": {
            "max_concurrent_runs": face.supervisors + face.max_workers + 4,
            "dequeue_interval_seconds": 2,
            "tag_concurrency_limits": [
                {"key": "streamplane/role", "value": "supervisor", "limit": face.supervisors},
                {
                    "key": "streamplane/slot",
                    "value": {"applyLimitPerUniqueValue": True},
                    "limit": 1,
                },
                {"key": "streamplane/role", "value": "worker", "limit": face.max_workers},
            ],
        },
        "run_monitoring": {
            "enabled": True,
            "start_timeout_seconds": 180,
            "cancel_timeout_seconds": 120,
            "poll_interval_seconds": 10,
        },
        "telemetry": {"enabled": False},
    }


def write_instance(home: Path, face: FaceSettings) -> Path:
    """Write ``home/dagster.yaml`` (creating ``home``); returns its path."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    # JSON is YAML too, and needs no YAML writer.
    path.write_text(json.dumps(instance_config(face), indent=2) + "\n")
    return path


def initialize_instance(home: Path) -> None:
    """Create the instance's SQLite storage once, before any service opens it.

    The webserver and the daemon start together; on a fresh DAGSTER_HOME both would
    create the schema at once, and SQLite's schema table can end up with two alembic
    heads, which no later start can open.
    """
    with DagsterInstance.from_config(str(home)):
        pass


_ACTIVE = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


def fail_leftover_runs(home: Path) -> int:
    """Mark failed the runs a previous session left unfinished (their processes are gone).

    Without this the liveness sensor would wait for their heartbeat to time out before
    it starts a supervisor. Returns how many runs were marked.
    """
    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(RunsFilter(statuses=_ACTIVE))
        for run in runs:
            instance.report_run_failed(run, "left over from a session that did not stop cleanly")
        return len(runs)


_RUNNING = {InstigatorStatus.RUNNING, InstigatorStatus.DECLARED_IN_CODE}


def stop_instigators(home: Path) -> int:
    """Turn off every running sensor and schedule, as the UI's Stop does; returns how many.

    What was stopped is written down so that :func:`restore_instigators` turns exactly
    those back on at the next start.
    """
    with DagsterInstance.from_config(str(home)) as instance:
        states = instance.all_instigator_state(instigator_statuses=_RUNNING)
        saved = {state.selector_id: state.status.value for state in states}
        (home / STOPPED_INSTIGATORS).write_text(json.dumps(saved))
        for state in states:
            instance.update_instigator_state(state.with_status(InstigatorStatus.STOPPED))
        return len(states)


def restore_instigators(home: Path) -> int:
    """Turn back on what the last stop turned off (cursors kept); returns how many."""
    path = home / STOPPED_INSTIGATORS
    if not path.exists():
        return 0
    saved = json.loads(path.read_text())
    restored = 0
    with DagsterInstance.from_config(str(home)) as instance:
        for state in instance.all_instigator_state():
            if state.selector_id in saved and state.status == InstigatorStatus.STOPPED:
                status = InstigatorStatus(saved[state.selector_id])
                instance.update_instigator_state(state.with_status(status))
                restored += 1
    path.unlink()
    return restored


_QUEUED = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED]
_STARTED = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


class _Stopper:
    """Terminates runs, reporting each run it could not terminate once."""

    def __init__(self, instance: DagsterInstance) -> None:
        self.instance = instance
        self.reported: set[str] = set()

    def cancel(self, statuses: list[DagsterRunStatus], role: str | None) -> None:
        """Terminate the runs of ``role`` (any role: None) in ``statuses``."""
        runs = self.instance.get_runs(RunsFilter(statuses=statuses, tags=_role_tags(role)))
        for run in runs:
            try:
                self.instance.run_coordinator.cancel_run(run.run_id)
            except Exception as exc:  # shutting down: report it and go on
                if run.run_id not in self.reported:
                    self.reported.add(run.run_id)
                    print(f"could not terminate run {run.run_id}: {exc}", flush=True)

    def drain(self, until: float, role: str | None, terminate: bool = True) -> bool:
        """Wait until no run of ``role`` is active; False if ``until`` passed first.

        Every poll cancels the queued runs of any role, and (``terminate``) terminates
        the started runs of ``role``: a sensor tick that was under way when the sensors
        stopped can still submit a run, which the queue would start as soon as the run
        it replaces has drained, and which would then be killed with Dagster and marked
        failed.
        """
        while True:
            self.cancel(_QUEUED, None)
            if terminate:
                self.cancel(_STARTED, role)
            active = RunsFilter(statuses=_ACTIVE, tags=_role_tags(role))
            if not self.instance.get_runs_count(active):
                return True
            if time.monotonic() >= until:
                return False
            time.sleep(0.25)


def _role_tags(role: str | None) -> dict[str, str]:
    return {"streamplane/role": role} if role else {}


def cancel_active_runs(home: Path, timeout: float = RUNS_STOP_S) -> None:
    """End every unfinished run, each the way that leaves it canceled or succeeded.

    Queued runs are canceled at once. Supervisor runs are terminated first and drain
    while their workers still take acks (a worker gone first would leave the
    supervisor's drain waiting for acks that never come); then worker runs, which have
    nothing left to do. Other runs (the snapshot) are short: they may finish until ten
    seconds before the deadline, when what is left is terminated. Runs that appear
    meanwhile (a tick that was under way when the sensors stopped) are handled the same
    way, at every poll.
    """
    deadline = time.monotonic() + timeout
    with DagsterInstance.from_config(str(home)) as instance:
        stopper = _Stopper(instance)
        stopper.drain(deadline, "supervisor")
        stopper.drain(min(deadline, time.monotonic() + 5.0), "worker")
        if not stopper.drain(deadline - 10.0, None, terminate=False):
            stopper.drain(deadline, None)
        left = instance.get_runs(RunsFilter(statuses=_ACTIVE))
        if left:
            print(f"runs still active after {timeout:.0f} s: {[r.run_id for r in left]}")
