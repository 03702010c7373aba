"""The offset ledger: the one owner of what each assigned partition may commit.

The source registers what it consumed, tasks carry the tracker of the assignment they
were consumed under, and the dispatcher completes them here; a task whose partition was
revoked (or re-assigned since) is no longer current, and its outcome moves no offset.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from streamplane.platform.supervisor.completed_offsets import Skips
from streamplane.platform.supervisor.offsets import OffsetTracker
from streamplane.platform.supervisor.tasks import Task, TopicPartition


class CommitPoint(NamedTuple):
    """What to commit for a partition: the offset, and what is complete above it."""

    offset: int
    metadata: str


class Ledger:
    """Per-partition offset trackers of the current assignment."""

    def __init__(self) -> None:
        self._trackers: dict[TopicPartition, OffsetTracker] = {}

    def assign(
        self, tp: TopicPartition, start: int | None = None, skips: Skips | None = None
    ) -> OffsetTracker:
        """Start tracking a newly assigned partition (a new generation of it)."""
        tracker = self._trackers[tp] = OffsetTracker(start, skips)
        return tracker

    def revoke(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, CommitPoint]:
        """Stop tracking these partitions; returns their last commit points."""
        keys = set(tps)
        points = self.commit_points(keys)
        for tp in keys:
            self._trackers.pop(tp, None)
        return points

    def tracker(self, tp: TopicPartition) -> OffsetTracker | None:
        """The tracker of an assigned partition, or None when it is not assigned."""
        return self._trackers.get(tp)

    def register(self, tp: TopicPartition, offsets: Iterable[int]) -> None:
        """Record consumed offsets of an assigned partition as outstanding, ascending."""
        self._trackers[tp].register(offsets)

    def is_current(self, task: Task) -> bool:
        """Whether the task belongs to its partition's current assignment."""
        return not task.revoked and self._trackers.get(task.tp) is task.tracker

    def complete(self, task: Task) -> bool:
        """The task's records are durably handled; False (and no effect) if not current."""
        if not self.is_current(task):
            return False
        task.tracker.complete(task.offsets)
        return True

    def committable(self, tps: set[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """Offset safe to commit per partition (only partitions with something consumed)."""
        return {tp: offset for tp, _, offset in self._committable(tps)}

    def commit_points(
        self, tps: set[TopicPartition] | None = None
    ) -> dict[TopicPartition, CommitPoint]:
        """Offset and metadata (what is complete above it) to commit per partition."""
        return {
            tp: CommitPoint(offset, tracker.commit_metadata())
            for tp, tracker, offset in self._committable(tps)
        }

    def _committable(
        self, tps: set[TopicPartition] | None
    ) -> Iterator[tuple[TopicPartition, OffsetTracker, int]]:
        for tp, tracker in self._trackers.items():
            if tps is not None and tp not in tps:
                continue
            offset = tracker.committable()
            if offset is not None:
                yield tp, tracker, offset

    @property
    def pending_records(self) -> int:
        """Consumed records not yet durably handled: the backpressure measure."""
        return sum(t.outstanding for t in self._trackers.values())
