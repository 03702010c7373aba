"""Tenant-fair, order-preserving queues: deficit round-robin, lanes, backoff, revocation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamplane.platform.supervisor.offsets import OffsetTracker
from streamplane.platform.supervisor.scheduler import Scheduler
from streamplane.platform.supervisor.tasks import Task, TopicPartition

from .factories import FAST, make_task, queued_tasks

TP: TopicPartition = ("in", 0)
NOW = 100.0


class _Offsets:
    """Hands out ascending offsets for one partition, like a consumer would."""

    def __init__(self, tp: TopicPartition = TP) -> None:
        self.tp = tp
        self.tracker = OffsetTracker()
        self.next = 0

    def task(self, size: int, tenant: str = "default", lane: Hashable | None = None) -> Task:
        offsets = list(range(self.next, self.next + size))
        self.next += size
        self.tracker.register(offsets)
        return make_task(self.tp, offsets, self.tracker, tenant=tenant, lane=lane)


def _drain(s: Scheduler, now: float = NOW) -> list[Task]:
    """Pop everything, releasing each task as soon as it is taken."""
    out = []
    while (task := s.pop(now)) is not None:
        out.append(task)
        s.release(task, requeue=False, now=now)
    return out


# -- fairness -------------------------------------------------------------------------


@FAST
@given(
    quantum=st.integers(1, 20),
    backlogs=st.lists(
        st.lists(st.integers(1, 12), min_size=3, max_size=40), min_size=2, max_size=4
    ),
    release_each=st.booleans(),
)
def test_backlogged_tenants_are_served_within_a_quantum_and_a_task_of_each_other(
    quantum: int, backlogs: list[list[int]], release_each: bool
) -> None:
    s = Scheduler(quantum)
    source = _Offsets()
    remaining = Counter[str]()
    for t, sizes in enumerate(backlogs):
        for size in sizes:
            s.push(source.task(size, tenant=f"t{t}"))
            remaining[f"t{t}"] += 1
    tenants = list(remaining)
    largest = max(size for sizes in backlogs for size in sizes)

    served: list[tuple[str, int]] = []
    while (task := s.pop(NOW)) is not None:
        if release_each:
            s.release(task, requeue=False, now=NOW)
        served.append((task.tenant, task.size))
        remaining[task.tenant] -= 1
        if remaining[task.tenant] == 0:
            break  # from here on not every tenant has backlog

    # Any window of dispatches, while every tenant had backlog: a tenant may be one turn
    # ahead of another (one quantum, plus the carried deficit of at most one task), and
    # the other may carry up to a task's worth of unspent deficit.
    bound = quantum + 2 * largest
    for i in range(len(served)):
        window = dict.fromkeys(tenants, 0)
        for tenant, size in served[i:]:
            window[tenant] += size
            spread = max(window.values()) - min(window.values())
            assert spread <= bound, (i, window, quantum, largest)


@FAST
@given(
    quantum=st.integers(1, 16),
    big_size=st.integers(1, 16),
    small_sizes=st.lists(st.integers(1, 16), min_size=1, max_size=5),
    head_start=st.integers(0, 30),
)
def test_a_huge_backlog_does_not_starve_a_small_tenant(
    quantum: int, big_size: int, small_sizes: list[int], head_start: int
) -> None:
    s = Scheduler(quantum)
    source = _Offsets()
    for _ in range(1000):
        s.push(source.task(big_size, tenant="big"))
    for _ in range(head_start):
        task = s.pop(NOW)
        assert task is not None
        s.release(task, requeue=False, now=NOW)
    for size in small_sizes:
        s.push(source.task(size, tenant="small"))

    big_records = 0
    small_left = len(small_sizes)
    while small_left:
        task = s.pop(NOW)
        assert task is not None
        s.release(task, requeue=False, now=NOW)
        if task.tenant == "small":
            small_left -= 1
        else:
            big_records += task.size
    # While "small" waits, "big" gets at most its share of each round the small one needs.
    rounds = -(-sum(small_sizes) // quantum) + 1
    assert big_records <= rounds * (quantum + big_size), (big_records, rounds)


def test_cost_is_records_not_tasks() -> None:
    s = Scheduler(quantum=10)
    source = _Offsets()
    for _ in range(20):
        s.push(source.task(10, tenant="bulk"))
    for _ in range(200):
        s.push(source.task(1, tenant="trickle"))
    served = Counter[str]()
    for task in _drain(s)[:60]:
        served[task.tenant] += task.size
    assert abs(served["bulk"] - served["trickle"]) <= 10 + 10


def test_quantum_must_be_positive() -> None:
    with pytest.raises(ValueError, match="quantum"):
        Scheduler(0)


def test_tenant_backlog_counts_queued_records() -> None:
    s = Scheduler(4)
    source = _Offsets()
    s.push(source.task(3, tenant="a"))
    s.push(source.task(2, tenant="a"))
    s.push(source.task(5, tenant="b"))
    assert s.tenant_backlog() == {"a": 5, "b": 5}
    assert (s.queued_tasks, s.queued_records) == (3, 10)


# -- lanes ----------------------------------------------------------------------------


def test_a_lane_hands_out_one_task_at_a_time_in_order() -> None:
    s = Scheduler(100)
    source = _Offsets()
    a, b = source.task(2, lane=TP), source.task(2, lane=TP)
    other = source.task(1, lane=("in", 1))
    for task in (a, b, other):
        s.push(task)
    assert s.pop(NOW) is a
    assert s.pop(NOW) is other, "another lane is not held up"
    assert s.pop(NOW) is None, "b waits until a is settled"
    s.release(a, requeue=False, now=NOW)
    assert s.pop(NOW) is b


def test_a_requeued_task_goes_back_to_the_front_of_its_lane() -> None:
    s = Scheduler(100)
    source = _Offsets()
    a, b = source.task(1, lane=TP), source.task(1, lane=TP)
    s.push(a)
    s.push(b)
    assert s.pop(NOW) is a
    s.release(a, requeue=True, now=NOW)
    assert s.queued_tasks == 2
    assert s.pop(NOW) is a
    s.release(a, requeue=False, now=NOW)
    assert s.pop(NOW) is b


def test_bisected_parts_take_the_front_of_an_ordered_lane_in_order() -> None:
    s = Scheduler(100)
    source = _Offsets()
    a, b = source.task(5, lane=TP), source.task(1, lane=TP)
    s.push(a)
    s.push(b)
    assert s.pop(NOW) is a
    first, second = a.split("part")
    assert (first.offsets, second.offsets) == ([0, 1], [2, 3, 4])
    s.replace(a, (first, second), NOW)
    assert (s.queued_tasks, s.queued_records) == (3, 6)
    assert s.pop(NOW) is first
    assert s.pop(NOW) is None
    s.release(first, requeue=False, now=NOW)
    assert s.pop(NOW) is second
    s.release(second, requeue=False, now=NOW)
    assert s.pop(NOW) is b


def test_bisected_parts_of_an_unordered_task_are_independent_and_leave_no_busy_lane() -> None:
    s = Scheduler(100)
    source = _Offsets()
    a = source.task(4)
    s.push(a)
    assert s.pop(NOW) is a
    first, second = a.split("part")
    s.replace(a, (first, second), NOW)
    assert s.pop(NOW) is first
    assert s.pop(NOW) is second, "unordered parts may be in flight together"
    s.release(first, requeue=False, now=NOW)
    s.release(second, requeue=True, now=NOW)
    assert s.pop(NOW) is second
    s.release(second, requeue=False, now=NOW)
    assert s.queued_tasks == 0
    assert s._busy == set()
    assert not list(s.queued())


# -- backoff --------------------------------------------------------------------------


def test_a_backing_off_head_holds_its_lane_until_due() -> None:
    s = Scheduler(100)
    source = _Offsets()
    a, b = source.task(1, lane=TP), source.task(1, lane=TP)
    free = source.task(1)
    s.push(a)
    s.push(b)
    assert s.pop(NOW) is a
    a.not_before = NOW + 5
    s.release(a, requeue=True, now=NOW)
    s.push(free)
    assert s.next_due() == NOW + 5
    assert s.pop(NOW) is free, "an unrelated lane is served meanwhile"
    assert s.pop(NOW + 4.9) is None, "b must not overtake a"
    assert s.pop(NOW + 5) is a
    assert a.not_before == 0.0
    s.release(a, requeue=False, now=NOW + 5)
    assert s.pop(NOW + 5) is b


def test_a_new_task_with_a_backoff_waits_for_it() -> None:
    s = Scheduler(100)
    source = _Offsets()
    a = source.task(1)
    a.not_before = NOW + 1
    s.push(a)
    assert s.pop(NOW) is None
    assert s.pop(NOW + 1) is a


# -- revocation -----------------------------------------------------------------------


def test_drop_partitions_removes_only_their_tasks() -> None:
    s = Scheduler(100)
    p0, p1 = _Offsets(("in", 0)), _Offsets(("in", 1))
    gone = [p0.task(2, tenant="a"), p0.task(1, tenant="b", lane=p0.tp)]
    kept = [p1.task(3, tenant="a"), p1.task(1, tenant="b", lane=p1.tp)]
    delayed = p0.task(1, tenant="a")
    delayed.not_before = NOW + 10
    for task in (*gone, *kept, delayed):
        s.push(task)
    dropped = s.drop_partitions({p0.tp})
    assert set(map(id, dropped)) == set(map(id, [*gone, delayed]))
    assert (s.queued_tasks, s.queued_records) == (2, 4)
    assert s.tenant_backlog() == {"a": 3, "b": 1}
    assert _drain(s, NOW + 20) == kept


# -- a model check of lanes under requeues and bisects ---------------------------------

_ops = st.lists(
    st.tuples(
        st.sampled_from(["push", "pop", "ok", "requeue", "bisect"]),
        st.integers(0, 2),  # lane
        st.integers(1, 4),  # size
        st.integers(0, 9),  # which task out
    ),
    max_size=80,
)


@FAST
@given(ops=_ops, quantum=st.integers(1, 6))
def test_lanes_stay_exclusive_and_ordered_under_requeues_and_bisects(
    ops: list[tuple[str, int, int, int]], quantum: int
) -> None:
    s = Scheduler(quantum)
    source = _Offsets()
    out: list[Task] = []
    settled: dict[Hashable, list[int]] = {}
    pushed: dict[Hashable, list[int]] = {}

    def settle(task: Task) -> None:
        s.release(task, requeue=False, now=NOW)
        settled.setdefault(task.lane_id, []).extend(task.offsets)

    for op, lane_k, size, which in ops:
        lane = (TP, lane_k)
        if op == "push":
            task = source.task(size, tenant=f"t{lane_k % 2}", lane=lane)
            pushed.setdefault(lane, []).extend(task.offsets)
            s.push(task)
        elif op == "pop":
            popped = s.pop(NOW)
            if popped is not None:
                assert popped.lane_id not in {t.lane_id for t in out}, "two tasks of a lane out"
                out.append(popped)
        elif out:
            task = out.pop(which % len(out))
            if op == "ok":
                settle(task)
            elif op == "requeue":
                s.release(task, requeue=True, now=NOW)
            elif task.size > 1:
                s.replace(task, task.split("part"), NOW)
            else:
                settle(task)
        queued = list(queued_tasks(s))
        assert s.queued_tasks == len(queued)
        assert s.queued_records == sum(t.size for t in queued)

    for task in out:
        settle(task)
    for task in _drain(s):
        settled.setdefault(task.lane_id, []).extend(task.offsets)
    assert settled == {lane: offsets for lane, offsets in pushed.items()}


def test_a_drained_tenant_leaves_the_table() -> None:
    """Issue 16.3: with many tenants the scheduler's tenant table only grew."""
    tracker = OffsetTracker()
    tracker.register(range(1000))
    s = Scheduler(quantum=10)
    for i in range(1000):
        s.push(make_task(("in", 0), [i], tracker, tenant=f"t{i}"))
    assert len(s.tenant_backlog()) == 1000
    while s.pop(0.0) is not None:
        pass
    assert s.tenant_backlog() == {}
    s.push(make_task(("in", 0), [0], tracker, tenant="t1"))
    assert s.tenant_backlog() == {"t1": 1}
