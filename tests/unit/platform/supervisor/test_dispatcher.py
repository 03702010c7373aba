"""The dispatch state machine: credit, leases, acks, failures and committable offsets."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from streamplane.platform.supervisor.dispatcher import (
    MAX_RETRY_BACKOFF_S,
    Dispatcher,
    ProtocolViolation,
)
from streamplane.platform.supervisor.offsets import OffsetTracker
from streamplane.platform.supervisor.tasks import Task, TopicPartition

from .factories import (
    FAST,
    FakeClock,
    FakeDeadLetters,
    RecordingTransport,
    current_attempts,
    make_dispatcher,
    make_task,
    queued_tasks,
)

TP: TopicPartition = ("in", 0)


def _setup(
    *, max_attempts: int = 3, lease_timeout_s: float = 30.0, retry_backoff_s: float = 0.5
) -> tuple[Dispatcher, FakeClock, FakeDeadLetters]:
    clock = FakeClock()
    dlq = FakeDeadLetters()
    d = make_dispatcher(
        clock,
        dlq,
        max_attempts=max_attempts,
        lease_timeout_s=lease_timeout_s,
        retry_backoff_s=retry_backoff_s,
    )
    return d, clock, dlq


def _submit(
    d: Dispatcher, tp: TopicPartition, offsets: list[int], lane: Hashable | None = None
) -> Task:
    tracker = d.ledger.tracker(tp)
    tracker.register(offsets)
    task = make_task(tp, offsets, tracker, lane=lane)
    d.submit(task)
    return task


def _worker(
    d: Dispatcher, session: str, max_inflight: int = 4, credit: int | None = None
) -> RecordingTransport:
    transport = RecordingTransport()
    d.connect(session, f"worker-{session}", max_inflight, transport)
    d.credit(session, max_inflight if credit is None else credit)
    return transport


# -- examples -------------------------------------------------------------------------


def test_ack_of_unknown_task_is_a_protocol_violation() -> None:
    d, _, _ = _setup()
    d.assign(TP, None)
    _submit(d, TP, [0, 1])
    w = _worker(d, "w1")
    d.dispatch()
    with pytest.raises(ProtocolViolation, match="unknown task"):
        d.ack("w1", "no-such-task", ok=True, retry=False, error="")
    # The held task is untouched by the bad ack.
    assert list(d.workers["w1"].inflight) == [w.sent[0].wire_id]
    wire_id = w.sent[0].wire_id
    d.ack("w1", wire_id, ok=True, retry=False, error="")
    assert d.committable() == {TP: 2}
    # A second ack of the same attempt is a violation too: the worker no longer holds it.
    with pytest.raises(ProtocolViolation):
        d.ack("w1", wire_id, ok=True, retry=False, error="")


def test_ack_of_a_task_held_by_another_worker_is_a_protocol_violation() -> None:
    d, _, _ = _setup()
    d.assign(TP, None)
    _submit(d, TP, [0])
    w1 = _worker(d, "w1")
    _worker(d, "w2", credit=0)
    d.dispatch()
    with pytest.raises(ProtocolViolation):
        d.ack("w2", w1.sent[0].wire_id, ok=True, retry=False, error="")


def test_late_ack_of_an_expired_lease_is_counted_and_ignored() -> None:
    d, clock, _ = _setup(lease_timeout_s=10.0)
    d.assign(TP, None)
    task = _submit(d, TP, [0, 1, 2])
    slow = _worker(d, "slow", max_inflight=1)
    d.dispatch()
    first = slow.sent[0].wire_id
    clock.advance(10.0)
    assert d.expire_leases() == 1
    assert d.events.failures == {"lease-expired": 1}
    assert d.scheduler.queued_tasks == 1
    # The slow worker keeps its slot until it answers, so it gets nothing more.
    assert d.dispatch() == 0
    fast = _worker(d, "fast")
    assert d.dispatch() == 1
    second = fast.sent[0].wire_id
    assert second != first, "each attempt has its own wire id"
    assert fast.sent[0].attempt == 2
    assert d.events.redelivered == 1

    d.ack("slow", first, ok=True, retry=False, error="")
    assert d.events.late_acks == 1
    assert d.events.acked == 0
    assert d.committable() == {TP: 0}, "a late ack completes nothing"
    assert task.session == "fast"
    # The slow worker's slot came back with its answer.
    assert d.workers["slow"].inflight == {}
    assert d.workers["slow"].available == 1

    d.ack("fast", second, ok=True, retry=False, error="")
    assert d.committable() == {TP: 3}
    assert d.events.late_acks == 1


def test_late_ack_after_redelivery_to_the_same_worker_is_not_taken_for_the_new_attempt() -> None:
    d, clock, _ = _setup(lease_timeout_s=10.0)
    d.assign(TP, None)
    _submit(d, TP, [0])
    w = _worker(d, "w", max_inflight=2)
    d.dispatch()
    clock.advance(11.0)
    d.expire_leases()
    d.dispatch()
    old, new = w.sent[0].wire_id, w.sent[1].wire_id
    assert old != new
    assert set(d.workers["w"].inflight) == {old, new}
    d.ack("w", old, ok=True, retry=False, error="")
    assert d.events.late_acks == 1
    assert d.committable() == {TP: 0}
    # A lease that already expired is not expired again.
    assert d.expire_leases() == 0
    d.ack("w", new, ok=True, retry=False, error="")
    assert d.committable() == {TP: 1}


def test_disconnect_requeues_what_the_worker_held() -> None:
    d, _, _ = _setup()
    d.assign(TP, None)
    _submit(d, TP, [0, 1])
    _submit(d, TP, [2])
    _worker(d, "w1")
    assert d.dispatch() == 2
    d.disconnect("w1")
    assert d.scheduler.queued_tasks == 2
    assert d.events.failures == {"worker-lost": 2}
    w2 = _worker(d, "w2")
    assert d.dispatch() == 2
    for sent in w2.sent:
        d.ack("w2", sent.wire_id, ok=True, retry=False, error="")
    assert d.committable() == {TP: 3}
    d.disconnect("w2")
    d.disconnect("w2")  # a second end of the same stream is harmless


def test_credit_bounds_the_tasks_handed_out() -> None:
    d, _, _ = _setup()
    d.assign(TP, None)
    for offset in range(10):
        _submit(d, TP, [offset])
    w = _worker(d, "w", max_inflight=3, credit=2)
    assert d.dispatch() == 2
    d.credit("w", 5)  # more than max_inflight allows
    assert d.dispatch() == 1
    assert len(d.workers["w"].inflight) == 3
    d.credit("w", 0)  # withdrawn: acks no longer hand slots back
    d.ack("w", w.sent[0].wire_id, ok=True, retry=False, error="")
    assert d.dispatch() == 0
    d.credit("w", 1)
    assert d.dispatch() == 1
    # With credit, an ack hands its slot back.
    d.ack("w", w.sent[1].wire_id, ok=True, retry=False, error="")
    assert d.dispatch() == 1


def test_dispatch_round_robins_over_workers() -> None:
    d, _, _ = _setup()
    d.assign(TP, None)
    for offset in range(6):
        _submit(d, TP, [offset])
    transports = [_worker(d, f"w{i}") for i in range(3)]
    assert d.dispatch() == 6
    assert [len(t.sent) for t in transports] == [2, 2, 2]


def test_draining_dispatches_nothing() -> None:
    d, _, _ = _setup()
    d.assign(TP, None)
    _submit(d, TP, [0])
    _worker(d, "w")
    d.draining = True
    assert d.dispatch() == 0


def test_retry_backs_off_doubling_up_to_the_cap() -> None:
    d, clock, dlq = _setup(max_attempts=100, retry_backoff_s=1.0)
    d.assign(TP, None)
    _submit(d, TP, [0])
    w = _worker(d, "w", max_inflight=1)
    waits = []
    assert d.dispatch() == 1
    for _ in range(7):
        d.ack("w", w.sent[-1].wire_id, ok=False, retry=True, error="busy")
        start = clock.now
        while d.dispatch() == 0:
            clock.advance(0.25)
        waits.append(clock.now - start)
    assert waits == [1.0, 2.0, 4.0, 8.0, MAX_RETRY_BACKOFF_S, MAX_RETRY_BACKOFF_S, 10.0]
    assert not dlq.written


def test_a_task_of_a_revoked_partition_is_not_queued_and_its_acks_are_ignored() -> None:
    d, _, _ = _setup()
    d.assign(TP, None)
    held = _submit(d, TP, [0, 1])
    queued = _submit(d, TP, [2])
    w = _worker(d, "w", max_inflight=1)
    d.dispatch()
    assert d.revoke({TP}) == {TP: (0, "")}
    assert queued.revoked
    assert held.revoked
    assert d.scheduler.queued_tasks == 0
    assert d.committable() == {}
    # A batch closed after the revoke is dropped on submit.
    late = make_task(TP, [3], held.tracker)
    d.submit(late)
    assert d.scheduler.queued_tasks == 0
    # Reassigned from the committed offset: the old generation's ack must not complete it.
    d.assign(TP, 0)
    d.ack("w", w.sent[0].wire_id, ok=True, retry=False, error="")
    assert d.committable() == {TP: 0}
    assert d.events.records_done == 0


def test_poison_single_record_goes_to_the_dead_letter_topic_and_then_commits() -> None:
    d, _, dlq = _setup(max_attempts=2)
    d.assign(TP, None)
    _submit(d, TP, [7])
    w = _worker(d, "w", max_inflight=1)
    for _ in range(2):
        assert d.dispatch() == 1
        d.ack("w", w.sent[-1].wire_id, ok=False, retry=False, error="bad json")
    assert d.dispatch() == 0
    assert [(t.offsets, kind, reason) for t, kind, reason in dlq.written] == [
        ([7], "reject", "bad json")
    ]
    assert d.committable() == {TP: 7}, "not before the DLQ write is confirmed"
    d.dead_lettered(dlq.pending.pop())
    assert d.committable() == {TP: 8}


def test_failed_dead_letter_write_routes_the_record_again() -> None:
    d, clock, dlq = _setup(max_attempts=2, retry_backoff_s=1.0)
    d.assign(TP, None)
    _submit(d, TP, [0])
    w = _worker(d, "w", max_inflight=1)
    for _ in range(2):
        d.dispatch()
        d.ack("w", w.sent[-1].wire_id, ok=False, retry=False, error="bad")
    task = dlq.pending.pop()
    d.dead_letter_failed(task)
    assert d.dispatch() == 0, "backs off before trying again"
    clock.advance(1.0)
    assert d.dispatch() == 1
    # One more failure sends it straight back to the DLQ.
    d.ack("w", w.sent[-1].wire_id, ok=False, retry=False, error="bad")
    assert dlq.pending == [task]
    d.dead_lettered(dlq.pending.pop())
    assert d.committable() == {TP: 1}


def test_a_record_whose_dead_letter_write_fails_keeps_its_place_in_the_lane() -> None:
    d, clock, dlq = _setup(max_attempts=1, retry_backoff_s=1.0)
    d.assign(TP, None)
    _submit(d, TP, [0], lane=TP)
    _submit(d, TP, [1], lane=TP)
    w = _worker(d, "w", max_inflight=2)
    assert d.dispatch() == 1, "one task of a lane at a time"
    d.ack("w", w.sent[-1].wire_id, ok=False, retry=False, error="bad")
    assert len(dlq.pending) == 1
    # Until the DLQ write settles, record 0 is still out: the lane waits for it.
    assert d.dispatch() == 0
    d.dead_letter_failed(dlq.pending.pop())
    clock.advance(1.0)
    acked: list[int] = []
    while d.dispatch():
        sent = w.sent[-1]
        d.ack("w", sent.wire_id, ok=True, retry=False, error="")
        acked.extend(sent.offsets)
    assert acked == [0, 1], "the lane's OK order is its input order"
    assert d.committable() == {TP: 2}


def test_a_confirmed_dead_letter_frees_its_lane() -> None:
    d, _, dlq = _setup(max_attempts=1)
    d.assign(TP, None)
    _submit(d, TP, [0], lane=TP)
    _submit(d, TP, [1], lane=TP)
    w = _worker(d, "w", max_inflight=2)
    d.dispatch()
    d.ack("w", w.sent[-1].wire_id, ok=False, retry=False, error="bad")
    d.dead_lettered(dlq.pending.pop())
    assert d.committable() == {TP: 1}
    assert d.dispatch() == 1
    assert w.sent[-1].offsets == (1,)


# -- bisection ------------------------------------------------------------------------


def _run_until_quiet(
    d: Dispatcher,
    clock: FakeClock,
    dlq: FakeDeadLetters,
    poison: set[int],
) -> list[Task]:
    """Workers REJECT any task holding a poison record and ack the rest OK."""
    acked_ok: list[Task] = []
    for _ in range(10_000):
        d.dispatch()
        held = [(s, wid, t) for s, w in d.workers.items() for wid, t in w.inflight.items()]
        if not held and not dlq.pending:
            clock.advance(MAX_RETRY_BACKOFF_S)
            if d.dispatch() == 0:
                return acked_ok
            continue
        for session, wire_id, task in held:
            ok = not poison.intersection(task.offsets)
            d.ack(session, wire_id, ok=ok, retry=False, error="" if ok else "poison")
            if ok:
                acked_ok.append(task)
        while dlq.pending:
            d.dead_lettered(dlq.pending.pop(0))
    raise AssertionError("dispatch did not settle")


@FAST
@given(
    n=st.integers(1, 40),
    data=st.data(),
    max_attempts=st.integers(1, 5),
    ordered=st.booleans(),
    workers=st.integers(1, 3),
)
def test_bisection_isolates_exactly_the_poison_record(
    n: int, data: st.DataObject, max_attempts: int, ordered: bool, workers: int
) -> None:
    poison = data.draw(st.integers(0, n - 1), label="poison index")
    d, clock, dlq = _setup(max_attempts=max_attempts)
    d.assign(TP, 100)
    offsets = list(range(100, 100 + n))
    _submit(d, TP, offsets, lane=TP if ordered else None)
    transports = {f"w{i}": _worker(d, f"w{i}", max_inflight=2) for i in range(workers)}
    acked_ok = _run_until_quiet(d, clock, dlq, {offsets[poison]})

    assert [(t.offsets, kind) for t, kind, _ in dlq.written] == [([offsets[poison]], "reject")]
    ok_offsets = [o for t in acked_ok for o in t.offsets]
    assert sorted(ok_offsets) == [o for o in offsets if o != offsets[poison]]
    assert len(ok_offsets) == n - 1, "every other record is acked OK exactly once"
    if ordered:
        assert ok_offsets == sorted(ok_offsets), "bisection keeps the lane's order"
    sends = [s for t in transports.values() for s in t.sent]
    alone = [s for s in sends if s.offsets == (offsets[poison],)]
    assert len(alone) == max_attempts
    assert d.committable() == {TP: 100 + n}
    assert d.scheduler.queued_tasks == 0
    assert d.inflight_tasks() == 0


# -- the state machine ----------------------------------------------------------------


@dataclass
class _Generation:
    """One assignment of a partition, as the model sees it."""

    tracker: OffsetTracker
    start: int | None
    registered: list[int] = field(default_factory=list)
    done: set[int] = field(default_factory=set)
    # Highest offset acked OK per (tenant, lane): OK acks of a lane must rise.
    lane_last_ok: dict[tuple[str, Hashable], int] = field(default_factory=dict)


@dataclass
class _CreditModel:
    granted: int
    sent_at_grant: int
    acks_since: int = 0


class DispatcherMachine(RuleBasedStateMachine):
    """Chaos against the dispatcher, with the section-3 invariants checked after each step."""

    ORDERED: ClassVar[bool] = False
    TPS: ClassVar[list[TopicPartition]] = [("in", 0), ("in", 1)]
    TENANTS: ClassVar[list[str]] = ["a", "b"]
    # Two attempts: short runs then reach dead-lettering (and failed DLQ writes) often.
    MAX_ATTEMPTS: ClassVar[int] = 2
    LEASE_S: ClassVar[float] = 10.0

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.dlq = FakeDeadLetters()
        self.d = make_dispatcher(
            self.clock,
            self.dlq,
            quantum=4,
            max_attempts=self.MAX_ATTEMPTS,
            lease_timeout_s=self.LEASE_S,
            retry_backoff_s=0.5,
        )
        self.gens: dict[TopicPartition, _Generation] = {}
        self.next_offset: dict[TopicPartition, int] = dict.fromkeys(self.TPS, 0)
        self.committed: dict[TopicPartition, int] = {}
        self.transports: dict[str, RecordingTransport] = {}
        self.credits: dict[str, _CreditModel] = {}
        self.sessions = 0
        for tp in self.TPS:
            self._assign(tp)

    # -- helpers ----------------------------------------------------------------------
    def _assign(self, tp: TopicPartition) -> None:
        start = self.committed.get(tp)
        tracker = self.d.assign(tp, start)
        self.gens[tp] = _Generation(tracker, start)
        if start is not None:
            self.next_offset[tp] = start  # re-read from the committed offset

    def _gen_of(self, task: Task) -> _Generation | None:
        gen = self.gens.get(task.tp)
        if gen is None or gen.tracker is not task.tracker or task.revoked:
            return None
        return gen

    def _pick(self, items: list[str], i: int) -> str:
        return sorted(items)[i % len(items)]

    def _connect(self, max_inflight: int, credit: int) -> str:
        self.sessions += 1
        session = f"s{self.sessions}"
        transport = self.transports[session] = RecordingTransport()
        self.d.connect(session, f"worker-{session}", max_inflight, transport)
        self._credit(session, credit)
        return session

    def _credit(self, session: str, available: int) -> None:
        self.d.credit(session, available)
        self.credits[session] = _CreditModel(available, len(self.transports[session].sent))

    def _ack(self, session: str, wire_id: str, ok: bool, retry: bool) -> None:
        worker = self.d.workers[session]
        task = worker.inflight[wire_id]
        live = task.session == session and task.wire_id == wire_id
        gen = self._gen_of(task)
        offsets = list(task.offsets)
        lane = (task.tenant, task.lane_id)
        late_before = self.d.events.late_acks
        self.d.ack(session, wire_id, ok=ok, retry=retry, error="" if ok else "boom")
        if self.credits[session].granted > 0:
            self.credits[session].acks_since += 1
        if not live:
            assert self.d.events.late_acks == late_before + 1
            return
        assert self.d.events.late_acks == late_before
        if ok and gen is not None:
            last = gen.lane_last_ok.get(lane)
            if self.ORDERED:
                assert last is None or offsets[0] > last, (lane, last, offsets)
                assert offsets == sorted(offsets)
            gen.lane_last_ok[lane] = max(offsets[-1], last if last is not None else -1)
            gen.done.update(offsets)

    # -- rules ------------------------------------------------------------------------
    @rule(
        tp_i=st.integers(0, 1),
        tenant_i=st.integers(0, 1),
        n=st.integers(1, 6),
        gap=st.integers(0, 2),
        lane_k=st.integers(0, 1),
    )
    def submit(self, tp_i: int, tenant_i: int, n: int, gap: int, lane_k: int) -> None:
        tp = self.TPS[tp_i]
        gen = self.gens.get(tp)
        if gen is None:
            return
        first = self.next_offset[tp] + gap  # compaction leaves gaps in offsets
        offsets = list(range(first, first + n))
        self.next_offset[tp] = first + n
        gen.tracker.register(offsets)
        gen.registered.extend(offsets)
        lane = (tp, lane_k) if self.ORDERED else None
        self.d.submit(make_task(tp, offsets, gen.tracker, tenant=self.TENANTS[tenant_i], lane=lane))

    # Worker events dispatch afterwards, as the gRPC service does on every message; a
    # submit does not, so queues also build up between explicit dispatches.
    @precondition(lambda self: len(self.d.workers) < 3)
    @rule(max_inflight=st.integers(1, 3), credit=st.integers(0, 3))
    def connect(self, max_inflight: int, credit: int) -> None:
        self._connect(max_inflight, credit)
        self.d.dispatch()

    @precondition(lambda self: bool(self.d.workers))
    @rule(i=st.integers(0, 20))
    def disconnect(self, i: int) -> None:
        self.d.disconnect(self._pick(list(self.d.workers), i))
        self.d.dispatch()

    @precondition(lambda self: bool(self.d.workers))
    @rule(i=st.integers(0, 20), available=st.integers(0, 4))
    def credit(self, i: int, available: int) -> None:
        self._credit(self._pick(list(self.d.workers), i), available)
        self.d.dispatch()

    @rule()
    def dispatch(self) -> None:
        self.d.dispatch()

    @precondition(lambda self: any(w.inflight for w in self.d.workers.values()))
    @rule(
        i=st.integers(0, 20),
        j=st.integers(0, 20),
        status=st.sampled_from(["ok", "ok", "reject", "reject", "retry"]),
    )
    def ack(self, i: int, j: int, status: str) -> None:
        busy = [s for s, w in self.d.workers.items() if w.inflight]
        session = self._pick(busy, i)
        wire_id = self._pick(list(self.d.workers[session].inflight), j)
        self._ack(session, wire_id, ok=status == "ok", retry=status == "retry")
        self.d.dispatch()

    @precondition(lambda self: bool(self.d.workers))
    @rule(i=st.integers(0, 20))
    def ack_unknown(self, i: int) -> None:
        session = self._pick(list(self.d.workers), i)
        before = dict(self.d.workers[session].inflight)
        try:
            self.d.ack(session, "never-sent.1", ok=True, retry=False, error="")
        except ProtocolViolation:
            pass
        else:
            raise AssertionError("an unknown ack must be a protocol violation")
        assert self.d.workers[session].inflight == before

    @rule(seconds=st.sampled_from([0.1, 0.5, 2.0, 6.0, 11.0]))
    def advance_and_expire(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.d.expire_leases()

    @rule(tp_i=st.integers(0, 1))
    def rebalance(self, tp_i: int) -> None:
        """Revoke the partition if assigned, else assign it (from its committed offset)."""
        tp = self.TPS[tp_i]
        gen = self.gens.pop(tp, None)
        if gen is None:
            self._assign(tp)
            return
        offsets = {t: point.offset for t, point in self.d.revoke({tp}).items()}
        expected = gen.tracker.committable()
        assert offsets == ({} if expected is None else {tp: expected})
        if tp in offsets:
            self.committed[tp] = offsets[tp]
        assert tp not in self.d.committable()

    @precondition(lambda self: bool(self.dlq.pending))
    @rule(i=st.integers(0, 20), written=st.booleans())
    def dead_letter_outcome(self, i: int, written: bool) -> None:
        task = self.dlq.pending.pop(i % len(self.dlq.pending))
        if written:
            self._dead_letter_confirmed(task)
        else:
            self.d.dead_letter_failed(task)
        self.d.dispatch()

    def _dead_letter_confirmed(self, task: Task) -> None:
        gen = self._gen_of(task)
        self.d.dead_lettered(task)
        if gen is not None:
            gen.done.update(task.offsets)

    # -- invariants -------------------------------------------------------------------
    @invariant()
    def credit_is_respected(self) -> None:
        for session, worker in self.d.workers.items():
            live = sum(1 for _ in current_attempts(worker))
            assert live <= worker.max_inflight
            assert len(worker.inflight) <= worker.max_inflight
            assert worker.available >= 0
            model = self.credits[session]
            sent = len(self.transports[session].sent) - model.sent_at_grant
            assert sent <= model.granted + model.acks_since, (session, sent, model)

    @invariant()
    def committable_never_passes_an_incomplete_record(self) -> None:
        committable = self.d.committable()
        for tp, gen in self.gens.items():
            pending = [o for o in gen.registered if o not in gen.done]
            offset = committable.get(tp)
            if pending:
                assert offset is not None
                assert offset <= min(pending), (tp, offset, min(pending))
            elif gen.registered:
                assert offset == gen.registered[-1] + 1
            else:
                assert offset == gen.start
        assert set(committable) <= set(self.gens)

    @invariant()
    def records_are_conserved(self) -> None:
        seen: dict[tuple[TopicPartition, int], str] = {}

        def place(task: Task, where: str) -> None:
            gen = self._gen_of(task)
            if gen is None:
                return
            for offset in task.offsets:
                key = (task.tp, offset)
                assert key not in seen, f"{key} both {seen[key]} and {where}"
                assert offset not in gen.done, f"{key} is done but still {where}"
                seen[key] = where

        queued = list(queued_tasks(self.d.scheduler))
        for task in queued:
            assert not task.revoked
            place(task, "queued")
        assert self.d.scheduler.queued_tasks == len(queued)
        assert self.d.scheduler.queued_records == sum(t.size for t in queued)
        for worker in self.d.workers.values():
            for _, task in current_attempts(worker):
                place(task, f"in flight on {worker.session}")
        for task in self.dlq.pending:
            place(task, "dead-letter pending")
        for tp, gen in self.gens.items():
            for offset in gen.registered:
                assert offset in gen.done or (tp, offset) in seen, f"{(tp, offset)} lost"

    @invariant()
    def a_lane_has_at_most_one_task_out(self) -> None:
        if not self.ORDERED:
            return
        out: set[tuple[str, Hashable]] = set()
        live = [t for w in self.d.workers.values() for _, t in current_attempts(w)]
        for task in live + self.dlq.pending:
            lane = (task.tenant, task.lane_id)
            assert lane not in out, f"two tasks of lane {lane} out at once"
            out.add(lane)

    def _quiet(self) -> bool:
        return (
            self.d.scheduler.queued_tasks == 0
            and self.d.inflight_tasks() == 0
            and not self.dlq.pending
        )

    def teardown(self) -> None:
        """The chaos stops; workers ack everything OK. Everything must settle."""
        if not any(w.max_inflight for w in self.d.workers.values()):
            self._connect(4, 4)
        for _ in range(1000):
            if self._quiet():
                break
            for session, worker in list(self.d.workers.items()):
                self._credit(session, worker.max_inflight)
            while self.dlq.pending:
                self._dead_letter_confirmed(self.dlq.pending.pop(0))
            self.clock.advance(MAX_RETRY_BACKOFF_S)
            self.d.dispatch()
            for session, worker in list(self.d.workers.items()):
                for wire_id in list(worker.inflight):
                    self._ack(session, wire_id, ok=True, retry=False)
            self.credit_is_respected()
            self.records_are_conserved()
            self.a_lane_has_at_most_one_task_out()
        assert self._quiet(), "dispatch did not settle once the workers kept acking OK"
        self.committable_never_passes_an_incomplete_record()
        committable = self.d.committable()
        for tp, gen in self.gens.items():
            assert gen.done >= set(gen.registered)
            if gen.registered:
                assert committable[tp] == gen.registered[-1] + 1


class OrderedDispatcherMachine(DispatcherMachine):
    """The same chaos with tasks in lanes (ORDERING=key|partition)."""

    ORDERED = True


_MACHINE_SETTINGS = settings(FAST, max_examples=200, stateful_step_count=50)

TestDispatcherUnordered = DispatcherMachine.TestCase
TestDispatcherUnordered.settings = _MACHINE_SETTINGS
TestDispatcherOrdered = OrderedDispatcherMachine.TestCase
TestDispatcherOrdered.settings = _MACHINE_SETTINGS
