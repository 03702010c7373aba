"""CPU time per role, read from /proc (psutil): steadier than wall time on shared machines.

A run takes a snapshot of each process's user+system seconds when its clock starts and
another when it stops; the difference over the records timed is that role's CPU cost
per record. The consuming roles' clock starts earlier (`CONSUMING_ROLES`). Threads
count (librdkafka's, gRPC's), children do not (none are started).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping

import psutil

#: Roles whose clock starts with the supervisor, not when the workers are ready: the
#: supervisor consumes (and the broker serves it) while the workers start, up to
#: MAX_PENDING_RECORDS records, which a clock started later would leave out.
CONSUMING_ROLES = ("supervisor", "broker")


def cpu_seconds(pids: Iterable[tuple[str, int]]) -> dict[str, float]:
    """User+system CPU seconds so far, summed per role; a gone process counts 0."""
    totals: dict[str, float] = {}
    for role, pid in pids:
        seconds = 0.0
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            seconds = times.user + times.system
        totals[role] = totals.get(role, 0.0) + seconds
    return totals


def own_cpu_seconds() -> float:
    """User+system CPU seconds of this process so far (all its threads)."""
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


def us_per_record(
    before: Mapping[str, float], after: Mapping[str, float], records: int
) -> dict[str, float | None]:
    """Microseconds of CPU per record for each role, between two snapshots."""
    return {
        role: round((after[role] - before.get(role, 0.0)) * 1e6 / records, 2) if records else None
        for role in after
    }


def pipeline_us_per_record(
    at_start: Mapping[str, float],
    at_ready: Mapping[str, float],
    at_end: Mapping[str, float],
    timed: int,
    total: int,
) -> dict[str, float | None]:
    """CPU per record of a pipeline run, by role.

    ``at_start``: when the supervisor started consuming; ``at_ready``: when every worker
    was ready and the clock started, ``timed`` records before the end. The consuming
    roles count from ``at_start`` over all ``total`` records, the others from
    ``at_ready`` over ``timed``.
    """
    figures = us_per_record(at_ready, at_end, timed)
    consuming = {role: at_end[role] for role in CONSUMING_ROLES if role in at_end}
    figures.update(us_per_record(at_start, consuming, total))
    return figures


def projected_rate(
    supervisor_us: float | None, worker_us: float | None, cores: int = 16
) -> float | None:
    """Records/s one supervisor and enough workers would reach on ``cores`` cores.

    The supervisor's dispatch loop runs on one core (its Python thread holds the GIL),
    so it bounds the rate at 1e6 / its CPU per record; the other ``cores - 1`` cores run
    workers, each record costing ``worker_us``. Kafka runs elsewhere (it does in
    production), so its CPU is left out.
    """
    if not supervisor_us or not worker_us:
        return None
    return round(min(1e6 / supervisor_us, (cores - 1) * 1e6 / worker_us), 0)
