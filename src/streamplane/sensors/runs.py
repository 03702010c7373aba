"""The sensors' view of the fleet: which supervisor and worker runs are alive.

A run counts as alive from the moment it is queued: a tick must never launch again what
an earlier tick already asked for just because the run queue has not started it yet. A
run stops counting when it finishes or is canceling (a terminated supervisor is draining;
its replacement may queue at once, and the run queue's tag concurrency limit holds it
until the slot is free).

A run whose run worker dies is normally marked failed by Dagster itself: the code
server that launched it sees its process exit, and on Kubernetes run monitoring sees
the pod. When that watcher is gone too (the code server or the daemon restarted, the
host rebooted), nothing would ever mark the run, and it would stay STARTED for ever,
holding its slot. So the jobs' ops write a heartbeat tag, and a started run whose last
sign of life (its heartbeat; before the first one, its start time) is older than the
timeout is marked failed here, with the reason, and the sensors replace it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from streamplane.jobs import HEARTBEAT_TAG, ROLE_TAG, SLOT_TAG

__all__ = ["ALIVE_STATUSES", "alive_runs", "fail_silent_runs", "run_slot"]

ALIVE_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


def alive_runs(instance: DagsterInstance, role: str) -> list[DagsterRun]:
    """Runs with ``streamplane/role=role`` that are queued, starting or running."""
    return list(instance.get_runs(RunsFilter(tags={ROLE_TAG: role}, statuses=ALIVE_STATUSES)))


def run_slot(run: DagsterRun) -> int | None:
    """The supervisor slot a run fills, or None when it carries no (valid) slot tag."""
    value = run.tags.get(SLOT_TAG)
    return int(value) if value is not None and value.isdigit() else None


def fail_silent_runs(
    instance: DagsterInstance,
    role: str,
    timeout_s: float,
    clock: Callable[[], float] = time.time,
) -> list[str]:
    """Mark failed the started ``role`` runs with no sign of life for ``timeout_s``.

    Returns the ids of the runs marked failed.
    """
    failed: list[str] = []
    records = instance.get_run_records(
        RunsFilter(tags={ROLE_TAG: role}, statuses=[DagsterRunStatus.STARTED])
    )
    now = clock()
    for record in records:
        last = _last_sign_of_life(record.dagster_run, record.start_time, record.create_timestamp)
        if now - last <= timeout_s:
            continue
        instance.report_run_failed(
            record.dagster_run,
            f"no heartbeat for {now - last:.0f} s (timeout {timeout_s:g} s): its run worker "
            "is gone; marked failed so that it can be replaced",
        )
        failed.append(record.dagster_run.run_id)
    return failed


def _last_sign_of_life(run: DagsterRun, start_time: float | None, created: object) -> float:
    """The run's last heartbeat; before its first one, its start (or creation) time."""
    beat = run.tags.get(HEARTBEAT_TAG, "")
    if beat.replace(".", "", 1).isdigit():
        return float(beat)
    return start_time if start_time is not None else _timestamp(created)


def _timestamp(value: object) -> float:
    stamp = getattr(value, "timestamp", None)
    return float(stamp()) if callable(stamp) else 0.0
