"""The dispatch state machine: credit, leases, acks, failures and committable offsets.

Pure logic, no I/O: the gRPC service feeds it worker events, the source feeds it tasks
and partition changes, and it calls `Transport.send` to hand a task to a worker and
`DeadLetters.write` for records that exhausted their attempts. All methods run on the
supervisor's event-loop thread.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from streamplane.platform.supervisor.completed_offsets import Skips
from streamplane.platform.supervisor.ledger import CommitPoint, Ledger
from streamplane.platform.supervisor.offsets import OffsetTracker
from streamplane.platform.supervisor.task_queue import DomainTaskQueue, TaskQueue
from streamplane.platform.supervisor.tasks import Task, TopicPartition

logger = logging.getLogger(__name__)

# RETRY backoff doubles per failure up to this cap; a transient failure that outlasts
# it is better retried steadily than pushed out of sight.
MAX_RETRY_BACKOFF_S = 10.0
# Attempt ids a worker session may still ack after its transport gave them up (a mesh
# publish whose outcome was unknown): a few times any credit, so none is forgotten early.
MAX_ABANDONED_IDS = 4096


class Failure(StrEnum):
    """Why a task attempt ended without success."""

    REJECT = "reject"
    RETRY = "retry"
    LOST = "worker-lost"
    LEASE = "lease-expired"
    UNSENT = "send-failed"


class Transport(Protocol):
    """Hands a task to a worker: the dispatch seam (gRPC stream, or MeshData)."""

    def send(self, session: str, task: Task) -> None:
        """Deliver `task` to the worker of `session`; must not block.

        A transport that delivers asynchronously (MeshData) reports a delivery it gave up
        on through `Dispatcher.unsent`; until then, or the ack, the task holds its credit.
        """


class Transactions(Protocol):
    """The exactly_once seam (see `supervisor.transactions`)."""

    def group_metadata(self) -> bytes:
        """The consumer group metadata to stamp on a task at dispatch."""

    def fence(
        self,
        transactional_id: str,
        tasks: list[Task],
        settle: Callable[[list[Task], dict[TopicPartition, int]], None],
    ) -> None:
        """Fence a given-up session's id; then ``settle(tasks, committed offsets)``."""


class DeadLetters(Protocol):
    """Writes exhausted records to the dead-letter topic."""

    def write(
        self, task: Task, kind: str, reason: str, settle: Callable[[Task, bool], None]
    ) -> None:
        """Produce the task's records to the DLQ, then call ``settle(task, written)`` once.

        ``settle`` may run from inside this call. Until it runs the task's ordering lane
        is held, so the lane's later records wait for the outcome.
        """


@dataclass(slots=True)
class WorkerState:
    """What the supervisor knows of one connected worker session."""

    session: str
    worker_id: str
    max_inflight: int
    transport: Transport
    available: int = 0
    accepting: bool = True
    inflight: dict[str, Task] = field(default_factory=dict)
    # Mesh domains this worker takes tasks from; None takes every task (no domain queues).
    domains: frozenset[str] | None = None
    # Attempts the transport gave up on (credit restored) that the worker may still ack.
    abandoned: dict[str, None] = field(default_factory=dict)
    # exactly_once: the session's producer id (fenced when the session is given up).
    transactional_id: str = ""
    evicted: bool = False
    acks: int = 0
    failures: int = 0
    records_done: int = 0


@dataclass(slots=True)
class Events:
    """Counters the metrics layer reads; plain ints keep the hot path cheap."""

    dispatched: int = 0
    acked: int = 0
    records_done: int = 0
    redelivered: int = 0
    dead_lettered: int = 0
    late_acks: int = 0
    failures: dict[str, int] = field(default_factory=dict)


class ProtocolViolation(Exception):
    """A worker broke the stream protocol; its session must be closed."""


# A violation's reason is logged and sent back in the stream's status: a peer's id in it
# is cut, or a megabyte id would make a megabyte log line and overflow gRPC's trailers.
_SHOWN_ID_CHARS = 80


def quoted_id(task_id: str) -> str:
    """A peer's task id as a violation's reason shows it: quoted, and cut when long."""
    if len(task_id) <= _SHOWN_ID_CHARS:
        return repr(task_id)
    return f"{task_id[:_SHOWN_ID_CHARS]!r}...(+{len(task_id) - _SHOWN_ID_CHARS} chars)"


class Dispatcher:
    """Assigns queued tasks to workers with credit and settles their outcomes."""

    def __init__(
        self,
        *,
        scheduler: TaskQueue,
        dead_letters: DeadLetters,
        max_attempts: int,
        lease_timeout_s: float,
        retry_backoff_s: float,
        clock: Callable[[], float],
        id_prefix: str = "t",
        on_acked: Callable[[float], None] | None = None,
        transactions: Transactions | None = None,
    ) -> None:
        self.scheduler = scheduler
        self._domain_queue = scheduler if isinstance(scheduler, DomainTaskQueue) else None
        self._dead_letters = dead_letters
        self._max_attempts = max_attempts
        self._lease_timeout_s = lease_timeout_s
        self._retry_backoff_s = retry_backoff_s
        self._clock = clock
        self._prefix = id_prefix
        # Seconds from dispatch to ack of each current attempt (the task-time histogram).
        self._on_acked = on_acked
        self.workers: dict[str, WorkerState] = {}
        self._rr: deque[str] = deque()
        self.ledger = Ledger()
        self.events = Events()
        self.draining = False
        # exactly_once: tasks carry group metadata, and a session given up is fenced
        # before its tasks are settled; `on_evict` closes a session's stream.
        self.transactions = transactions
        self.on_evict: Callable[[str], None] = lambda _session: None

    # -- partitions -----------------------------------------------------------------
    def assign(
        self, tp: TopicPartition, start: int | None, skips: Skips | None = None
    ) -> OffsetTracker:
        """Start tracking a newly assigned partition."""
        return self.ledger.assign(tp, start, skips)

    def revoke(self, tps: set[TopicPartition]) -> dict[TopicPartition, CommitPoint]:
        """Stop dispatching these partitions; returns their commit points."""
        offsets = self.ledger.revoke(tps)
        for task in self.scheduler.drop_partitions(tps):
            task.revoked = True
        for worker in self.workers.values():
            for task in worker.inflight.values():
                if task.tp in tps:
                    task.revoked = True
        return offsets

    def committable(self, tps: set[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """Offset safe to commit per partition (only partitions with something consumed)."""
        return self.ledger.committable(tps)

    def commit_points(self) -> dict[TopicPartition, CommitPoint]:
        """Offset and metadata to commit per partition."""
        return self.ledger.commit_points()

    @property
    def pending_records(self) -> int:
        """Consumed records not yet durably handled: the backpressure measure."""
        return self.ledger.pending_records

    def idle_credit(self) -> int:
        """Tasks the connected workers could take right now."""
        return sum(w.available for w in self.workers.values())

    # -- tasks ----------------------------------------------------------------------
    def submit(self, task: Task) -> None:
        """Queue a task the batcher closed."""
        if not self.ledger.is_current(task):
            return  # its partition was revoked while the batch was open
        self.scheduler.push(task)

    def dispatch(self) -> int:
        """Send queued tasks to workers with credit, round-robin; returns tasks sent."""
        if self.draining:
            return 0
        now = self._clock()
        sent = 0
        rr = self._rr
        idle_rounds = 0
        while rr and idle_rounds < len(rr):
            session = rr[0]
            rr.rotate(-1)
            worker = self.workers[session]
            if worker.available <= 0:
                idle_rounds += 1
                continue
            if worker.domains is None:
                task = self.scheduler.pop(now)
                if task is None:
                    break
            else:
                task = self._pop_for(worker.domains, now)
                if task is None:
                    idle_rounds += 1  # other workers' domains may still have tasks
                    continue
            idle_rounds = 0
            self._send(worker, task, now)
            sent += 1
        return sent

    def _send(self, worker: WorkerState, task: Task, now: float) -> None:
        worker.available -= 1
        worker.inflight[task.stamp_attempt()] = task
        task.session = worker.session
        task.lease_deadline = now + self._lease_timeout_s
        if self.transactions is not None:
            task.group_metadata = self.transactions.group_metadata()
        self.events.dispatched += 1
        if task.attempt > 1:
            self.events.redelivered += 1
        worker.transport.send(worker.session, task)

    def _pop_for(self, domains: frozenset[str], now: float) -> Task | None:
        if self._domain_queue is None:
            return self.scheduler.pop(now)
        return self._domain_queue.pop_for(domains, now)

    # -- workers --------------------------------------------------------------------
    def connect(
        self,
        session: str,
        worker_id: str,
        max_inflight: int,
        transport: Transport,
        domains: frozenset[str] | None = None,
        transactional_id: str = "",
    ) -> WorkerState:
        """Register a worker session after its Hello (`domains`: see WorkerState)."""
        worker = WorkerState(
            session,
            worker_id,
            max_inflight,
            transport,
            domains=domains,
            transactional_id=transactional_id,
        )
        self.workers[session] = worker
        self._rr.append(session)
        return worker

    def credit(self, session: str, available: int) -> None:
        """The worker can take `available` more tasks now (0 withdraws its credit)."""
        worker = self.workers[session]
        if worker.evicted:
            return
        worker.accepting = available > 0
        worker.available = max(0, min(available, worker.max_inflight - len(worker.inflight)))

    def held(self, session: str, wire_id: str) -> Task | None:
        """The task whose live attempt `wire_id` the session's worker holds, else None."""
        worker = self.workers.get(session)
        task = worker.inflight.get(wire_id) if worker is not None else None
        if task is None or task.session != session or task.wire_id != wire_id:
            return None
        return task

    def ack(self, session: str, task_id: str, ok: bool, retry: bool, error: str) -> None:
        """Settle one task; raises ProtocolViolation for a task this worker does not hold."""
        worker = self.workers[session]
        task = worker.inflight.pop(task_id, None)
        if task is None:
            if task_id in worker.abandoned:
                # Delivered after all, though its transport gave up: a counted duplicate.
                del worker.abandoned[task_id]
                self.events.late_acks += 1
                return
            raise ProtocolViolation(f"ack for unknown task {quoted_id(task_id)}")
        if worker.accepting:
            # An ack hands its slot back: one message per task instead of two.
            worker.available = min(worker.available + 1, worker.max_inflight - len(worker.inflight))
        now = self._clock()
        if task.session != session or task.wire_id != task_id:
            # Its lease expired and it was redelivered: this result is a counted duplicate.
            self.events.late_acks += 1
            return
        self.events.acked += 1
        if self._on_acked is not None:
            self._on_acked(now - (task.lease_deadline - self._lease_timeout_s))
        if ok:
            worker.acks += 1
            worker.records_done += task.size
            self._complete(task, now)
        else:
            worker.failures += 1
            self._fail(task, Failure.RETRY if retry else Failure.REJECT, error, now)

    def disconnect(self, session: str) -> None:
        """The worker's stream ended: requeue everything it held."""
        worker = self.workers.pop(session, None)
        if worker is None:
            return
        self._rr.remove(session)
        now = self._clock()
        live = [
            task
            for wire_id, task in worker.inflight.items()
            if task.session == session and task.wire_id == wire_id
        ]
        if self.transactions is not None:
            # The worker may still be alive and commit: fence it first, and learn which
            # of its tasks committed before the fence. Their lanes stay held meanwhile.
            self.transactions.fence(
                worker.transactional_id,
                live,
                lambda tasks, committed: self._fenced(worker, tasks, committed),
            )
            return
        for task in live:
            self._fail(task, Failure.LOST, f"worker {worker.worker_id} lost", now)

    def _fenced(
        self, worker: WorkerState, tasks: list[Task], committed: dict[TopicPartition, int]
    ) -> None:
        now = self._clock()
        for task in tasks:
            if committed.get(task.tp, -1) >= task.commit_offset:
                # Its transaction committed before the fence: done, not to be redone.
                worker.records_done += task.size
                self._complete(task, now)
            else:
                self._fail(task, Failure.LOST, f"worker {worker.worker_id} lost", now)
        self.dispatch()

    def holds(self, session: str, wire_id: str) -> bool:
        """Whether `wire_id` is the live attempt of a task the session's worker holds."""
        return self.held(session, wire_id) is not None

    def unsent(self, session: str, wire_id: str, error: str) -> None:
        """The transport gave up delivering `wire_id`: restore the credit, requeue the task.

        Not the records' fault, so it does not count towards MAX_ATTEMPTS; the next
        attempt gets a new id, and a late ack of this one (should the delivery have
        landed after all) is counted as late, not taken for a protocol violation.
        """
        worker = self.workers.get(session)
        if worker is None:
            return  # the session ended: `disconnect` requeued the task
        task = worker.inflight.pop(wire_id, None)
        if task is None:
            return  # already acked
        worker.abandoned[wire_id] = None
        if len(worker.abandoned) > MAX_ABANDONED_IDS:
            del worker.abandoned[next(iter(worker.abandoned))]
        if worker.accepting:
            worker.available = min(worker.available + 1, worker.max_inflight - len(worker.inflight))
        if task.session != session or task.wire_id != wire_id:
            return  # a stale attempt (its lease expired): only its slot was held
        now = self._clock()
        self._count_failure(Failure.UNSENT.value)
        task.session = None
        if not self.ledger.is_current(task):
            self.scheduler.release(task, requeue=False, now=now)
            return
        task.attempt += 1
        logger.info("task requeued: not delivered", extra={"task": wire_id, "error": error})
        self.scheduler.release(task, requeue=True, now=now)

    def expire_leases(self) -> int:
        """Requeue tasks whose lease ran out; the slow worker keeps the slot until it acks."""
        now = self._clock()
        expired = 0
        evict: list[str] = []
        for worker in self.workers.values():
            for wire_id, task in worker.inflight.items():
                if (
                    task.session == worker.session
                    and task.wire_id == wire_id
                    and task.lease_deadline <= now
                ):
                    expired += 1
                    if self.transactions is not None:
                        # A redelivery while it may still commit would write twice:
                        # give the whole session up; `disconnect` fences it.
                        if not worker.evicted:
                            evict.append(worker.session)
                        break
                    task.session = None
                    self._fail(task, Failure.LEASE, "task lease expired", now)
        for session in evict:
            self._evict(session)
        return expired

    def _evict(self, session: str) -> None:
        worker = self.workers[session]
        worker.evicted = True
        worker.available = 0
        worker.accepting = False
        self._count_failure(Failure.LEASE.value)
        logger.warning("task lease expired: session given up", extra={"worker": worker.worker_id})
        self.on_evict(session)

    # -- outcomes -------------------------------------------------------------------
    def _complete(self, task: Task, now: float) -> None:
        self.scheduler.release(task, requeue=False, now=now)
        # Not current: revoked, and the new owner re-reads these records.
        if self.ledger.complete(task):
            self.events.records_done += task.size

    def _count_failure(self, reason: str) -> None:
        self.events.failures[reason] = self.events.failures.get(reason, 0) + 1

    def _fail(self, task: Task, why: Failure, error: str, now: float) -> None:
        self._count_failure(why.value)
        if not self.ledger.is_current(task):
            self.scheduler.release(task, requeue=False, now=now)
            return
        task.attempt += 1
        task.session = None
        if why is Failure.REJECT and task.size > 1:
            # Bisect: the records are at fault, so find which ones in log2(n) rounds
            # instead of sending all of them to the dead-letter topic.
            self.scheduler.replace(task, task.split(self._prefix), now)
            return
        task.failures += 1
        if task.failures >= self._max_attempts:
            if task.size > 1:
                self.scheduler.replace(task, task.split(self._prefix), now)
                return
            # The lane stays held until the DLQ write settles (`dead_lettered` or
            # `dead_letter_failed`): if the write fails the record is routed again, and
            # in key/partition order it must still come before the lane's later records.
            self.events.dead_lettered += task.size
            self._dead_letters.write(task, why.value, error or why.value, self._dead_letter_settled)
            return
        if why is Failure.RETRY:
            backoff = self._retry_backoff_s * 2 ** (task.failures - 1)
            task.not_before = now + min(backoff, MAX_RETRY_BACKOFF_S)
        self.scheduler.release(task, requeue=True, now=now)

    def _dead_letter_settled(self, task: Task, written: bool) -> None:
        if written:
            self.dead_lettered(task)
        else:
            self.dead_letter_failed(task)

    def dead_lettered(self, task: Task) -> None:
        """The DLQ write of `task` was confirmed: its offsets may advance, its lane moves on."""
        self.scheduler.release(task, requeue=False, now=self._clock())
        if self.ledger.complete(task):
            self.events.records_done += task.size

    def dead_letter_failed(self, task: Task) -> None:
        """The DLQ write failed: try the whole route again later, first in its lane."""
        now = self._clock()
        if not self.ledger.is_current(task):
            self.scheduler.release(task, requeue=False, now=now)
            return
        task.failures = self._max_attempts - 1
        task.not_before = now + self._retry_backoff_s
        self.scheduler.release(task, requeue=True, now=now)

    def inflight_tasks(self) -> int:
        """Tasks handed to workers and not yet acked."""
        return sum(len(w.inflight) for w in self.workers.values())
