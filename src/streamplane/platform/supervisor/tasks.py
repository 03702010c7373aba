"""The supervisor's in-memory task: one batch of records of one partition.

A task is built once, as the protobuf message that goes on the wire, and kept until it is
acknowledged; redelivery only bumps its attempt. Keeping one partition per task makes
revocation and offset tracking exact: a task references the tracker it registered with.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from dataclasses import dataclass, field

from streamplane.platform.supervisor.offsets import OffsetTracker
from streamplane.runner.v1 import runner_pb2

TopicPartition = tuple[str, int]

_ids = itertools.count(1)


def new_task_id(prefix: str) -> str:
    """A task id unique within this supervisor process."""
    return f"{prefix}-{next(_ids)}"


@dataclass(eq=False, slots=True)
class Task:
    """A batch of records of one partition, and its delivery state."""

    task_id: str
    tenant: str
    tp: TopicPartition
    # Ordering lane: tasks of one lane are delivered one at a time, in order.
    # None means unordered; the scheduler then gives the task a lane of its own.
    lane: Hashable | None
    message: runner_pb2.SupervisorMessage
    offsets: list[int]
    nbytes: int
    tracker: OffsetTracker
    attempt: int = 1
    failures: int = 0
    not_before: float = 0.0
    lease_deadline: float = 0.0
    session: str | None = None
    revoked: bool = False
    children: list[Task] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Records in the task; the unit of fair-queue cost."""
        return len(self.offsets)

    @property
    def lane_id(self) -> Hashable:
        """The lane the scheduler serialises this task in."""
        return self.lane if self.lane is not None else self.task_id

    def stamp_attempt(self) -> str:
        """Write the attempt into the wire message; returns this attempt's wire id.

        Each attempt has its own id, so a late ack of an expired attempt can never be
        mistaken for the ack of its redelivery, even on the same worker.
        """
        wire = self.message.task
        wire.attempt = self.attempt
        wire.task_id = f"{self.task_id}.{self.attempt}"
        return wire.task_id

    @property
    def wire_id(self) -> str:
        """The id of the attempt currently on the wire."""
        return self.message.task.task_id

    def split(self, prefix: str) -> tuple[Task, Task]:
        """Two tasks holding the first and second half of this one's records, in order."""
        records = self.message.task.records
        half = len(records) // 2
        return (self._child(prefix, 0, half), self._child(prefix, half, len(records)))

    def _child(self, prefix: str, start: int, stop: int) -> Task:
        message = runner_pb2.SupervisorMessage()
        task = message.task
        task.task_id = new_task_id(prefix)
        task.tenant = self.tenant
        task.attempt = self.attempt
        task.records.extend(self.message.task.records[start:stop])
        return Task(
            task_id=task.task_id,
            tenant=self.tenant,
            tp=self.tp,
            lane=self.lane,
            message=message,
            offsets=self.offsets[start:stop],
            nbytes=sum(len(r.value) for r in task.records),
            tracker=self.tracker,
            attempt=self.attempt,
        )
