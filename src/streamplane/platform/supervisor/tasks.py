"""The supervisor's in-memory task: one batch of records of one partition.

A task keeps its records as columns (`Records`) until it is acknowledged; the wire
message is built at each send (see `to_message`), so a pending record is held once, not
twice. Keeping one partition per task makes revocation and offset tracking exact: a
task references the tracker it registered with.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from dataclasses import dataclass

from streamplane.platform.records import Records, pack
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
    records: Records
    tracker: OffsetTracker
    nbytes: int = 0
    attempt: int = 1
    failures: int = 0
    not_before: float = 0.0
    lease_deadline: float = 0.0
    session: str | None = None
    revoked: bool = False
    wire_id: str = ""
    # exactly_once: the supervisor's group metadata, stamped at each dispatch.
    group_metadata: bytes = b""

    @property
    def offsets(self) -> list[int]:
        """Offsets of the task's records, ascending."""
        return self.records.offsets

    @property
    def commit_offset(self) -> int:
        """The input offset to commit once the task is done: one past its last record."""
        return self.records.offsets[-1] + 1

    @property
    def size(self) -> int:
        """Records in the task; the unit of fair-queue cost."""
        return len(self.records.offsets)

    @property
    def first_timestamp_ms(self) -> int:
        """The Kafka timestamp of the task's first record; -1 for an empty task."""
        stamps = self.records.timestamps_ms
        return stamps[0] if stamps else -1

    @property
    def lane_id(self) -> Hashable:
        """The lane the scheduler serialises this task in."""
        return self.lane if self.lane is not None else self.task_id

    def stamp_attempt(self) -> str:
        """Start a new attempt on the wire; returns its id.

        Each attempt has its own id, so a late ack of an expired attempt can never be
        mistaken for the ack of its redelivery, even on the same worker.
        """
        self.wire_id = f"{self.task_id}.{self.attempt}"
        return self.wire_id

    def to_message(self) -> runner_pb2.SupervisorMessage:
        """The Task message of the current attempt."""
        message = runner_pb2.SupervisorMessage()
        wire = message.task
        wire.task_id = self.wire_id or self.stamp_attempt()
        # A shared task ("*") whose records turn out to be one tenant's, say a part of
        # one after a bisection, names that tenant: the column is not sent then.
        wire.tenant = self.records.sole_tenant() or self.tenant
        wire.attempt = self.attempt
        if self.group_metadata:
            wire.group_metadata = self.group_metadata
            wire.commit_offset = self.commit_offset
        pack(self.records, wire.records)
        return message

    def split(self, prefix: str) -> tuple[Task, Task]:
        """Two tasks holding the first and second half of this one's records, in order."""
        half = self.size // 2
        return (self._child(prefix, 0, half), self._child(prefix, half, self.size))

    def _child(self, prefix: str, start: int, stop: int) -> Task:
        records = self.records.slice(start, stop)
        return Task(
            task_id=new_task_id(prefix),
            tenant=self.tenant,
            tp=self.tp,
            lane=self.lane,
            records=records,
            tracker=self.tracker,
            nbytes=sum(map(len, records.values)),
            attempt=self.attempt,
        )
