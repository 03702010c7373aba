"""Per-domain queues: a task waits in its tenant's domain; a lane keeps one domain."""

from __future__ import annotations

from streamplane.platform.mesh.routing import TenantDomains
from streamplane.platform.supervisor.domain_scheduler import DomainScheduler
from streamplane.platform.supervisor.offsets import OffsetTracker
from tests.unit.platform.supervisor.factories import make_task

NOW = 1000.0
TP = ("in", 0)


def _scheduler() -> DomainScheduler:
    return DomainScheduler(8, TenantDomains({"gold": "fast"}, "default"))


def test_pinned_tenants_wait_in_their_domain() -> None:
    s = _scheduler()
    tracker = OffsetTracker(None)
    gold = make_task(TP, [0], tracker, tenant="gold")
    plain = make_task(TP, [1], tracker, tenant="plain")
    s.push(gold)
    s.push(plain)
    assert (s.queued_tasks, s.queued_records) == (2, 2)
    assert s.domain_of(gold) == "fast"
    assert s.domain_of(plain) == "default"
    assert s.pop_for(["default"], NOW) is plain
    assert s.pop_for(["default"], NOW) is None
    assert s.pop_for(["elsewhere"], NOW) is None
    assert s.pop_for(["default", "fast"], NOW) is gold
    assert s.tenant_backlog() == {}  # drained tenants leave the tables


def test_pop_takes_turns_between_a_workers_domains() -> None:
    s = _scheduler()
    tracker = OffsetTracker(None)
    for offset in range(4):
        s.push(make_task(TP, [offset], tracker, tenant="gold" if offset % 2 else "plain"))
    tenants = [t.tenant for t in iter(lambda: s.pop(NOW), None)]
    assert sorted(tenants) == ["gold", "gold", "plain", "plain"]
    assert tenants[0] != tenants[1]


def test_a_lane_keeps_the_domain_of_its_oldest_task() -> None:
    s = _scheduler()
    tracker = OffsetTracker(None)
    lane = ("in", 0, 3)
    first = make_task(TP, [0], tracker, tenant="gold", lane=lane)
    second = make_task(TP, [1], tracker, tenant="plain", lane=lane)
    s.push(first)
    s.push(second)
    # Both wait in "fast": order outranks the pin, one task of the lane at a time.
    assert s.domain_of(second) == "fast"
    assert s.pop_for(["default"], NOW) is None
    assert s.pop_for(["fast"], NOW) is first
    assert s.pop_for(["fast"], NOW) is None  # the lane is busy
    s.release(first, requeue=False, now=NOW)
    assert s.pop_for(["fast"], NOW) is second
    s.release(second, requeue=False, now=NOW)
    assert s.held_lanes() == 0
    # With nothing held, the lane's next task goes by its own tenant again.
    third = make_task(TP, [2], tracker, tenant="plain", lane=lane)
    s.push(third)
    assert s.domain_of(third) == "default"


def test_bisected_parts_stay_in_the_domain_and_revoke_forgets_lanes() -> None:
    s = _scheduler()
    tracker = OffsetTracker(None)
    task = make_task(TP, [0, 1, 2, 3], tracker, tenant="gold")
    s.push(task)
    assert s.pop_for(["fast"], NOW) is task
    left, right = task.split("p")
    s.replace(task, [left, right], NOW)
    assert s.queued_tasks == 2
    assert s.pop_for(["default"], NOW) is None
    assert s.pop_for(["fast"], NOW) is left
    dropped = s.drop_partitions({TP})
    assert dropped == [right]
    s.release(left, requeue=False, now=NOW)
    assert (s.queued_tasks, s.held_lanes()) == (0, 0)
    assert s.next_due() is None
