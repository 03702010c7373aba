"""exactly_once in the dispatcher: tasks carry group metadata, lost sessions are fenced
before their tasks are settled, and a lease expiry gives the whole session up."""

from __future__ import annotations

from collections.abc import Callable

from streamplane.platform.supervisor.dispatcher import Dispatcher
from streamplane.platform.supervisor.scheduler import Scheduler
from streamplane.platform.supervisor.tasks import Task, TopicPartition

from .factories import FakeClock, FakeDeadLetters, RecordingTransport, make_task

TP: TopicPartition = ("in", 0)
Settle = Callable[[list[Task], dict[TopicPartition, int]], None]


class FakeTransactions:
    """Records fences; the test settles them with the committed offsets it chooses."""

    def __init__(self) -> None:
        self.metadata = b"CGMDv2:gen-1"
        self.fences: list[tuple[str, list[Task], Settle]] = []

    def group_metadata(self) -> bytes:
        return self.metadata

    def fence(self, transactional_id: str, tasks: list[Task], settle: Settle) -> None:
        self.fences.append((transactional_id, tasks, settle))


def _setup() -> tuple[Dispatcher, FakeClock, FakeTransactions, list[str]]:
    clock = FakeClock()
    txns = FakeTransactions()
    d = Dispatcher(
        scheduler=Scheduler(8),
        dead_letters=FakeDeadLetters(),
        max_attempts=3,
        lease_timeout_s=5.0,
        retry_backoff_s=0.1,
        clock=clock,
        transactions=txns,
    )
    evicted: list[str] = []
    d.on_evict = evicted.append
    d.assign(TP, None)
    return d, clock, txns, evicted


def _submit(d: Dispatcher, offsets: list[int]) -> Task:
    tracker = d.ledger.tracker(TP)
    assert tracker is not None
    tracker.register(offsets)
    task = make_task(TP, offsets, tracker, lane=TP)
    d.submit(task)
    return task


def _worker(d: Dispatcher, session: str) -> RecordingTransport:
    transport = RecordingTransport()
    d.connect(session, f"w-{session}", 4, transport, transactional_id=f"tid-{session}")
    d.credit(session, 4)
    return transport


def test_a_dispatched_task_carries_the_group_metadata_and_its_commit_offset() -> None:
    d, _, txns, _ = _setup()
    _submit(d, [10, 11, 12])
    w = _worker(d, "a")
    d.dispatch()
    wire = w.sent[0].task.to_message().task
    assert wire.group_metadata == txns.metadata
    assert wire.commit_offset == 13


def _lose_one_task(d: Dispatcher, txns: FakeTransactions) -> tuple[str, list[Task], Settle]:
    """Dispatch a task of offsets 0-1 to session "a", then lose the session."""
    _submit(d, [0, 1])
    _worker(d, "a")
    d.dispatch()
    d.disconnect("a")
    [fence] = txns.fences
    return fence


def test_a_lost_session_is_fenced_before_its_tasks_are_settled() -> None:
    d, _, txns, _ = _setup()
    tid, tasks, settle = _lose_one_task(d, txns)
    assert tid == "tid-a"
    # Until the fence is done the task is neither requeued nor complete: its lane is held.
    assert d.scheduler.queued_tasks == 0
    assert d.committable() == {TP: 0}
    settle(tasks, {})  # nothing committed before the fence
    assert d.scheduler.queued_tasks == 1
    assert d.events.failures == {"worker-lost": 1}


def test_a_task_whose_transaction_committed_before_the_fence_is_done_not_redone() -> None:
    d, _, txns, _ = _setup()
    _, tasks, settle = _lose_one_task(d, txns)
    settle(tasks, {TP: 2})
    assert d.scheduler.queued_tasks == 0
    assert d.committable() == {TP: 2}
    assert d.events.records_done == 2
    assert d.events.failures == {}


def test_lease_expiry_evicts_the_session_instead_of_redelivering() -> None:
    d, clock, txns, evicted = _setup()
    _submit(d, [0])
    _worker(d, "a")
    d.dispatch()
    clock.now += 6
    assert d.expire_leases() == 1
    assert evicted == ["a"]
    # No redelivery while the stopped worker might still commit.
    assert d.scheduler.queued_tasks == 0
    d.credit("a", 4)
    assert d.workers["a"].available == 0
    clock.now += 6
    d.expire_leases()
    assert evicted == ["a"], "evicted once"
    d.disconnect("a")
    assert len(txns.fences) == 1


def test_the_next_task_of_a_partition_waits_for_the_previous_one() -> None:
    d, _, _, _ = _setup()
    _submit(d, [0, 1])
    _submit(d, [2, 3])
    w = _worker(d, "a")
    assert d.dispatch() == 1
    d.ack("a", w.sent[0].wire_id, ok=True, retry=False, error="")
    assert d.dispatch() == 1
    assert w.sent[1].task.to_message().task.commit_offset == 4
