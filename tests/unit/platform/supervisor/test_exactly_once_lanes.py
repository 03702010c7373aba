"""exactly_once lanes under any interleaving (issue 11): a state machine drives the
dispatcher through submits, dispatches, transaction commits, acks, aborts, lost and
fenced sessions, lease expiries and the supervisor's own dead letters, against a model of
what Kafka has committed for each partition.

What exactly-once needs of the dispatcher, checked after every step:
- a partition has at most one task out at a time (with a worker, being fenced, or being
  dead-lettered), so the transactions of one partition commit one after another;
- every task sent starts exactly at the partition's committed offset, and commits one
  past its last record: the committed offsets only move forward, and never skip or
  repeat a record;
- a task whose transaction committed before its session was lost is not redone.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from streamplane.platform.supervisor.dispatcher import Dispatcher
from streamplane.platform.supervisor.scheduler import Scheduler
from streamplane.platform.supervisor.tasks import Task, TopicPartition

from .factories import FAST, FakeClock, FakeDeadLetters, RecordingTransport, make_task

PARTITIONS: list[TopicPartition] = [("in", 0), ("in", 1), ("in", 2)]
LEASE_S = 5.0
Settle = Callable[[list[Task], dict[TopicPartition, int]], None]


class Transactions:
    """Fences a session at once; the machine settles it with the model's offsets."""

    def __init__(self) -> None:
        self.pending: list[tuple[list[Task], Settle]] = []

    def group_metadata(self) -> bytes:
        return b"CGMDv2:gen-1"

    def fence(self, transactional_id: str, tasks: list[Task], settle: Settle) -> None:
        self.pending.append((tasks, settle))


class ExactlyOnceLanes(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.txns = Transactions()
        self.dlq = FakeDeadLetters()
        self.d = Dispatcher(
            scheduler=Scheduler(8),
            dead_letters=self.dlq,
            max_attempts=2,
            lease_timeout_s=LEASE_S,
            retry_backoff_s=0.1,
            clock=self.clock,
            transactions=self.txns,
        )
        self.evicted: list[str] = []
        self.d.on_evict = self.evicted.append
        for tp in PARTITIONS:
            self.d.assign(tp, None)
        self.submitted = dict.fromkeys(PARTITIONS, 0)
        # What Kafka holds as committed: moved only by a transaction's commit.
        self.committed = dict.fromkeys(PARTITIONS, 0)
        self.transports: dict[str, RecordingTransport] = {}
        self.checked: dict[str, int] = {}
        # Tasks whose transaction committed, by session, not yet acknowledged.
        self.unacked: dict[str, list[Task]] = {}
        self.sessions = 0

    # -- the model's Kafka ------------------------------------------------------------
    def _commit(self, task: Task) -> None:
        """A transaction commits `task`'s records and its input offset."""
        assert task.offsets[0] == self.committed[task.tp], (task.offsets, self.committed)
        assert task.commit_offset == task.offsets[-1] + 1
        self.committed[task.tp] = task.commit_offset

    def _live(self, session: str) -> list[Task]:
        worker = self.d.workers.get(session)
        if worker is None:
            return []
        done = {id(t) for t in self.unacked.get(session, [])}
        return [
            t
            for wire_id, t in worker.inflight.items()
            if t.session == session and t.wire_id == wire_id and id(t) not in done
        ]

    # -- rules ------------------------------------------------------------------------
    @rule(partition=st.sampled_from(PARTITIONS), n=st.integers(1, 4))
    def submit(self, partition: TopicPartition, n: int) -> None:
        start = self.submitted[partition]
        offsets = list(range(start, start + n))
        self.submitted[partition] = start + n
        tracker = self.d.ledger.tracker(partition)
        assert tracker is not None
        tracker.register(offsets)
        self.d.submit(make_task(partition, offsets, tracker, lane=partition))

    @precondition(lambda self: len(self.d.workers) < 3)
    @rule(credit=st.integers(1, 4))
    def connect(self, credit: int) -> None:
        self.sessions += 1
        session = f"s{self.sessions}"
        transport = RecordingTransport()
        self.transports[session] = transport
        self.checked[session] = 0
        self.d.connect(session, f"w-{session}", 4, transport, transactional_id=f"tid-{session}")
        self.d.credit(session, credit)

    @rule()
    def dispatch(self) -> None:
        self.d.dispatch()

    @rule(data=st.data())
    def worker_commits(self, data: st.DataObject) -> None:
        """A worker's transaction commits one task it holds (its ack is still to come)."""
        live = [(s, t) for s in sorted(self.d.workers) for t in self._live(s)]
        if not live:
            return
        session, task = data.draw(st.sampled_from(live))
        self._commit(task)
        self.unacked.setdefault(session, []).append(task)

    @rule(data=st.data())
    def ack_committed(self, data: st.DataObject) -> None:
        pending = [(s, t) for s, tasks in sorted(self.unacked.items()) for t in tasks]
        if not pending:
            return
        session, task = data.draw(st.sampled_from(pending))
        self.unacked[session].remove(task)
        if session in self.d.workers:
            self.d.ack(session, task.wire_id, ok=True, retry=False, error="")

    @rule(data=st.data(), retry=st.booleans())
    def transaction_aborts(self, data: st.DataObject, retry: bool) -> None:
        """The task's transaction aborted (RETRY), or its processor failed (REJECT)."""
        live = [(s, t) for s in sorted(self.d.workers) for t in self._live(s)]
        if not live:
            return
        session, task = data.draw(st.sampled_from(live))
        self.d.ack(session, task.wire_id, ok=False, retry=retry, error="aborted")

    @rule(data=st.data())
    def session_lost(self, data: st.DataObject) -> None:
        if not self.d.workers:
            return
        session = data.draw(st.sampled_from(sorted(self.d.workers)))
        self.d.disconnect(session)
        self.unacked.pop(session, None)  # their acks never arrive

    @rule()
    def fences_settle(self) -> None:
        """The fence is done: the supervisor reads what Kafka committed."""
        pending, self.txns.pending = self.txns.pending, []
        for tasks, settle in pending:
            settle(tasks, {t.tp: self.committed[t.tp] for t in tasks})

    @rule()
    def leases_run_out(self) -> None:
        self.clock.advance(LEASE_S + 1)
        self.d.expire_leases()

    @rule()
    def dead_letters_commit(self) -> None:
        """The supervisor's own transaction writes the exhausted records and offsets."""
        pending, self.dlq.pending = self.dlq.pending, []
        for task in pending:
            self._commit(task)
            self.d.dead_lettered(task)

    # -- invariants -------------------------------------------------------------------
    @invariant()
    def every_send_starts_at_the_committed_offset(self) -> None:
        for session, transport in self.transports.items():
            for sent in transport.sent[self.checked[session] :]:
                assert sent.offsets[0] == self.committed[sent.task.tp], (sent, self.committed)
                assert sent.task.to_message().task.commit_offset == sent.offsets[-1] + 1
            self.checked[session] = len(transport.sent)

    @invariant()
    def one_task_out_per_partition(self) -> None:
        out: list[TopicPartition] = []
        for worker in self.d.workers.values():
            out += [
                t.tp
                for w, t in worker.inflight.items()
                if t.session == worker.session and t.wire_id == w
            ]
        out += [t.tp for tasks, _ in self.txns.pending for t in tasks]
        out += [t.tp for t in self.dlq.pending]
        assert len(out) == len(set(out)), out

    @invariant()
    def committed_offsets_stay_within_what_was_read(self) -> None:
        for tp in PARTITIONS:
            assert self.committed[tp] <= self.submitted[tp]

    def teardown(self) -> None:
        """Settle everything, with a fresh worker that commits all it gets: every record
        is committed once, in order, whatever happened before."""
        for session in list(self.d.workers):
            self.d.disconnect(session)
        self.unacked.clear()
        self.fences_settle()
        self.clock.advance(60)  # past every retry backoff
        self.connect(4)
        session = f"s{self.sessions}"
        for _ in range(200):
            self.dead_letters_commit()
            self.d.dispatch()
            self.every_send_starts_at_the_committed_offset()
            live = self._live(session)
            if not live and not self.dlq.pending:
                break
            for task in live:
                self._commit(task)
                self.d.ack(session, task.wire_id, ok=True, retry=False, error="")
        assert self.committed == self.submitted, (self.committed, self.submitted)


ExactlyOnceLanes.TestCase.settings = FAST
test_exactly_once_lanes = ExactlyOnceLanes.TestCase
