"""Credit reservation and release through mesh publishing (hypothesis, stateful).

A publish reserves one credit of its worker until the ack returns; a publish given up
restores it and requeues the records; a disconnect requeues everything. Under any
interleaving of publish outcomes, acks, failures, lease expiry and disconnects, no
worker ever holds more than its credit, no record is lost or held twice, a task only
goes to a worker serving its domain, and once things settle every credit is back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from streamplane.platform.mesh.routing import TenantDomains
from streamplane.platform.supervisor.dispatcher import Dispatcher
from streamplane.platform.supervisor.domain_scheduler import DomainScheduler
from streamplane.platform.supervisor.tasks import Task, TopicPartition
from tests.unit.platform.supervisor.factories import FAST, FakeClock, FakeDeadLetters, make_task

TPS: list[TopicPartition] = [("in", 0), ("in", 1)]
TENANTS = ["plain", "gold", "silver"]
DOMAIN_SETS = [frozenset({"default"}), frozenset({"fast"}), frozenset({"default", "fast"})]
LEASE_S = 30.0


@dataclass
class Job:
    session: str
    wire_id: str


@dataclass
class FakeMesh:
    """A transport that only records publishes; the machine decides their outcome."""

    publishing: list[Job] = field(default_factory=list)

    def send(self, session: str, task: Task) -> None:
        self.publishing.append(Job(session, task.wire_id))


class CreditMachine(RuleBasedStateMachine):
    ORDERED = False

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.dlq = FakeDeadLetters()
        self.scheduler = DomainScheduler(8, TenantDomains({"gold": "fast"}, "default"))
        self.d = Dispatcher(
            scheduler=self.scheduler,
            dead_letters=self.dlq,
            max_attempts=1000,  # acks here are OK or RETRY: nothing reaches the DLQ
            lease_timeout_s=LEASE_S,
            retry_backoff_s=0.5,
            clock=self.clock,
            id_prefix="child",
        )
        self.mesh = FakeMesh()
        # Deliveries that reached a worker (including ones whose publish "failed" after
        # landing): the worker may ack them.
        self.delivered: dict[str, list[str]] = {}
        self.registered: dict[TopicPartition, list[int]] = {tp: [] for tp in TPS}
        self.done: dict[TopicPartition, set[int]] = {tp: set() for tp in TPS}
        self.next_offset = dict.fromkeys(TPS, 0)
        self.sessions = 0
        self.violations = 0
        for tp in TPS:
            self.d.assign(tp, 0)

    # -- helpers --------------------------------------------------------------------
    def _connect(self, max_inflight: int, domains: frozenset[str]) -> str:
        self.sessions += 1
        session = f"s{self.sessions}"
        self.d.connect(session, f"w{self.sessions}", max_inflight, self.mesh, domains=domains)
        self.delivered[session] = []
        return session

    def _ack(self, session: str, wire_id: str, ok: bool) -> None:
        worker = self.d.workers[session]
        task = worker.inflight.get(wire_id)
        live = task is not None and task.session == session and task.wire_id == wire_id
        self.d.ack(session, wire_id, ok=ok, retry=not ok, error="")
        if live and ok:
            assert task is not None
            self.done[task.tp].update(task.offsets)

    def _pick(self, items: list[str], i: int) -> str:
        return items[i % len(items)]

    # -- rules ----------------------------------------------------------------------
    @rule(tp_i=st.integers(0, 1), n=st.integers(1, 4), tenant=st.sampled_from(TENANTS))
    def consume(self, tp_i: int, n: int, tenant: str) -> None:
        tp = TPS[tp_i]
        start = self.next_offset[tp]
        offsets = list(range(start, start + n))
        self.next_offset[tp] = start + n
        tracker = self.d.ledger.tracker(tp)
        tracker.register(offsets)
        self.registered[tp].extend(offsets)
        lane = (tp, 0) if self.ORDERED else None
        self.d.submit(make_task(tp, offsets, tracker, tenant=tenant, lane=lane))
        self.d.dispatch()

    @precondition(lambda self: len(self.d.workers) < 4)
    @rule(max_inflight=st.integers(1, 4), domains=st.sampled_from(DOMAIN_SETS))
    def connect(self, max_inflight: int, domains: frozenset[str]) -> None:
        session = self._connect(max_inflight, domains)
        self.d.credit(session, max_inflight)
        self.d.dispatch()

    @precondition(lambda self: bool(self.mesh.publishing))
    @rule(i=st.integers(0, 50), outcome=st.sampled_from(["ok", "failed", "failed-but-landed"]))
    def publish_outcome(self, i: int, outcome: str) -> None:
        job = self.mesh.publishing.pop(i % len(self.mesh.publishing))
        if job.session not in self.d.workers:
            return  # the session ended; the pool dropped this job
        if outcome != "failed":
            self.delivered[job.session].append(job.wire_id)
        if outcome != "ok":
            self.d.unsent(job.session, job.wire_id, "attempts ran out")
            self.d.dispatch()

    @precondition(lambda self: any(self.delivered.values()))
    @rule(i=st.integers(0, 50), ok=st.booleans())
    def ack(self, i: int, ok: bool) -> None:
        session = self._pick([s for s, d in self.delivered.items() if d], i)
        wire_id = self.delivered[session].pop(i % len(self.delivered[session]))
        self._ack(session, wire_id, ok)
        self.d.dispatch()

    @precondition(lambda self: bool(self.d.workers))
    @rule(i=st.integers(0, 50))
    def disconnect(self, i: int) -> None:
        session = self._pick(sorted(self.d.workers), i)
        self.d.disconnect(session)
        self.mesh.publishing = [j for j in self.mesh.publishing if j.session != session]
        del self.delivered[session]
        self.d.dispatch()

    @precondition(lambda self: bool(self.d.workers))
    @rule(i=st.integers(0, 50), available=st.integers(0, 4))
    def credit(self, i: int, available: int) -> None:
        self.d.credit(self._pick(sorted(self.d.workers), i), available)
        self.d.dispatch()

    @rule(seconds=st.sampled_from([1.0, LEASE_S + 1]))
    def leases(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.d.expire_leases()
        # The pool asks before each retry whether the attempt is still wanted.
        for job in list(self.mesh.publishing):
            if job.session in self.d.workers and not self.d.holds(job.session, job.wire_id):
                self.mesh.publishing.remove(job)
                self.d.unsent(job.session, job.wire_id, "no longer held")
        self.d.dispatch()

    # -- invariants -----------------------------------------------------------------
    @invariant()
    def credit_is_never_exceeded(self) -> None:
        for worker in self.d.workers.values():
            assert worker.available >= 0
            assert len(worker.inflight) <= worker.max_inflight
            assert worker.available + len(worker.inflight) <= worker.max_inflight

    @invariant()
    def tasks_go_only_to_workers_of_their_domain(self) -> None:
        for worker in self.d.workers.values():
            assert worker.domains is not None
            for wire_id, task in worker.inflight.items():
                if task.session == worker.session and task.wire_id == wire_id:
                    assert self.scheduler.domain_of(task) in worker.domains

    @invariant()
    def records_are_conserved(self) -> None:
        seen: set[tuple[TopicPartition, int]] = set()

        def place(task: Task) -> None:
            for offset in task.offsets:
                key = (task.tp, offset)
                assert key not in seen, f"{key} held twice"
                assert offset not in self.done[task.tp], f"{key} done yet held"
                seen.add(key)

        for task in self.scheduler.queued():
            place(task)
        for worker in self.d.workers.values():
            for wire_id, task in worker.inflight.items():
                if task.session == worker.session and task.wire_id == wire_id:
                    place(task)
        for tp, offsets in self.registered.items():
            for offset in offsets:
                assert offset in self.done[tp] or (tp, offset) in seen, f"{(tp, offset)} lost"

    @invariant()
    def a_lane_has_at_most_one_task_out(self) -> None:
        if not self.ORDERED:
            return
        out: set[object] = set()
        for worker in self.d.workers.values():
            for wire_id, task in worker.inflight.items():
                if task.session == worker.session and task.wire_id == wire_id:
                    assert task.lane_id not in out
                    out.add(task.lane_id)

    def teardown(self) -> None:
        """Publishes succeed and workers ack OK from now on: all settles, credit returns."""
        for domains in DOMAIN_SETS[:2]:
            if not any(w.domains and domains <= w.domains for w in self.d.workers.values()):
                self.d.credit(self._connect(4, domains), 4)
        for _ in range(500):
            for session, worker in self.d.workers.items():
                self.d.credit(session, worker.max_inflight)
            self.clock.advance(LEASE_S + 1)
            self.d.expire_leases()
            self.d.dispatch()
            for job in self.mesh.publishing:
                if job.session in self.d.workers:
                    self.delivered[job.session].append(job.wire_id)
            self.mesh.publishing.clear()
            for session, wire_ids in self.delivered.items():
                while wire_ids:
                    self._ack(session, wire_ids.pop(), ok=True)
            self.credit_is_never_exceeded()
            self.records_are_conserved()
            if self.scheduler.queued_tasks == 0 and self.d.inflight_tasks() == 0:
                break
        assert self.scheduler.queued_tasks == 0
        assert self.d.inflight_tasks() == 0
        assert self.scheduler.held_lanes() == 0
        for worker in self.d.workers.values():
            assert worker.available == worker.max_inflight, worker
        for tp, offsets in self.registered.items():
            assert self.done[tp] >= set(offsets)
            assert self.d.committable().get(tp, 0) == self.next_offset[tp]


class OrderedCreditMachine(CreditMachine):
    """The same, with one lane per partition (ORDERING=partition) mixing tenants."""

    ORDERED = True


_SETTINGS = settings(FAST, max_examples=150, stateful_step_count=40)
TestCreditUnordered = CreditMachine.TestCase
TestCreditUnordered.settings = _SETTINGS
TestCreditOrdered = OrderedCreditMachine.TestCase
TestCreditOrdered.settings = _SETTINGS


def test_a_given_up_publish_restores_credit_and_requeues_with_a_new_attempt() -> None:
    machine = CreditMachine()
    machine.consume(0, 3, "plain")
    session = machine._connect(1, frozenset({"default"}))
    machine.d.credit(session, 1)
    machine.d.dispatch()
    [job] = machine.mesh.publishing
    worker = machine.d.workers[session]
    assert (worker.available, len(worker.inflight)) == (0, 1)
    machine.mesh.publishing.clear()
    machine.d.unsent(session, job.wire_id, "attempts ran out")
    assert (worker.available, len(worker.inflight)) == (1, 0)
    assert machine.d.events.failures == {"send-failed": 1}
    [task] = machine.scheduler.queued()
    assert task.attempt == 2
    assert task.failures == 0  # not the records' fault: no step towards the DLQ
    machine.d.dispatch()
    [again] = machine.mesh.publishing
    assert again.wire_id != job.wire_id
    # The first attempt landed after all: its ack is a counted late ack, not a violation.
    machine.d.ack(session, job.wire_id, ok=True, retry=False, error="")
    assert machine.d.events.late_acks == 1
    assert (worker.available, len(worker.inflight)) == (0, 1)
