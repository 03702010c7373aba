"""Test doubles and builders for the supervisor's pure dispatch logic.

Everything here is deterministic: time is a `FakeClock`, a transport records what it was
asked to send, and the dead-letter writer only remembers the tasks it was handed, so a
test decides when (and whether) a DLQ write is confirmed.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings

from streamplane.platform.records import Records
from streamplane.platform.supervisor.dispatcher import Dispatcher, WorkerState
from streamplane.platform.supervisor.offsets import OffsetTracker
from streamplane.platform.supervisor.scheduler import Scheduler
from streamplane.platform.supervisor.tasks import Task, TopicPartition, new_task_id

# Deterministic and quick: the same examples on every run, no example database.
FAST = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class FakeClock:
    """A monotonic clock that only moves when a test advances it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


@dataclass
class Sent:
    """One `Transport.send` call, with the wire id and records as they were then."""

    session: str
    wire_id: str
    attempt: int
    task: Task
    offsets: tuple[int, ...]


@dataclass
class RecordingTransport:
    """A transport that records every send, in order."""

    sent: list[Sent] = field(default_factory=list)

    def send(self, session: str, task: Task) -> None:
        wire = task.to_message().task
        assert wire.task_id == task.wire_id
        assert list(wire.records.offsets) == task.offsets
        self.sent.append(Sent(session, wire.task_id, wire.attempt, task, tuple(task.offsets)))


@dataclass
class FakeDeadLetters:
    """Remembers DLQ writes; the test confirms or fails them when it likes."""

    pending: list[Task] = field(default_factory=list)
    written: list[tuple[Task, str, str]] = field(default_factory=list)

    def write(
        self, task: Task, kind: str, reason: str, settle: Callable[[Task, bool], None]
    ) -> None:
        self.pending.append(task)
        self.written.append((task, kind, reason))


def make_task(
    tp: TopicPartition,
    offsets: list[int],
    tracker: OffsetTracker,
    *,
    tenant: str = "default",
    lane: Hashable | None = None,
    value_size: int = 10,
) -> Task:
    """A task of the given records, built the way the batcher builds one."""
    records = Records(tp[0], tp[1])
    for offset in offsets:
        records.offsets.append(offset)
        records.timestamps_ms.append(0)
        records.keys.append(None)
        records.values.append(b"x" * value_size)
    return Task(
        task_id=new_task_id("test"),
        tenant=tenant,
        tp=tp,
        lane=lane,
        records=records,
        nbytes=value_size * len(offsets),
        tracker=tracker,
    )


def make_dispatcher(
    clock: FakeClock,
    dead_letters: FakeDeadLetters,
    *,
    quantum: int = 8,
    max_attempts: int = 3,
    lease_timeout_s: float = 30.0,
    retry_backoff_s: float = 0.5,
) -> Dispatcher:
    return Dispatcher(
        scheduler=Scheduler(quantum),
        dead_letters=dead_letters,
        max_attempts=max_attempts,
        lease_timeout_s=lease_timeout_s,
        retry_backoff_s=retry_backoff_s,
        clock=clock,
        id_prefix="child",
    )


# -- white-box views ------------------------------------------------------------------
# The scheduler has no public listing of its queues (the hot path does not need one); the
# conservation checks read its internals here, in one place.


def queued_tasks(scheduler: Scheduler) -> Iterator[Task]:
    """Every task waiting in the scheduler, delayed ones included."""
    yield from scheduler.queued()


def current_attempts(worker: WorkerState) -> Iterator[tuple[str, Task]]:
    """The worker's in-flight entries that are the task's live attempt (not stale)."""
    for wire_id, task in worker.inflight.items():
        if task.session == worker.session and task.wire_id == wire_id:
            yield wire_id, task
