"""Per-partition tracking of outstanding records, and the offset that is safe to commit.

A partition's committable offset is its lowest outstanding record, or one past the highest
record consumed when none is outstanding (DESIGN.md section 3.1). Offsets are registered in
consumption order, which Kafka guarantees is ascending within a partition.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from streamplane.platform.supervisor import completed_offsets
from streamplane.platform.supervisor.completed_offsets import Skips


class OffsetTracker:
    """Outstanding offsets of one partition, owned by one assignment generation.

    After a revoke the tracker is dropped; a late ack that still holds a reference to it
    is recognised by identity and ignored (see `Dispatcher`).
    """

    __slots__ = ("_done", "_next", "_order", "skips", "start")

    def __init__(self, start: int | None = None, skips: Skips | None = None) -> None:
        self._order: deque[int] = deque()
        self._done: set[int] = set()
        self._next: int | None = start
        self.start = start
        # Offsets the previous owner completed above its commit: taken, never dispatched.
        self.skips = skips

    def register(self, offsets: Iterable[int]) -> None:
        """Record offsets as consumed and outstanding, in ascending order."""
        order = self._order
        for offset in offsets:
            if self._next is not None and offset < self._next:
                raise ValueError(f"offset {offset} registered out of order")
            order.append(offset)
            self._next = offset + 1

    @property
    def next_offset(self) -> int | None:
        """One past the highest offset registered (or the start): where fetching resumes."""
        return self._next

    def complete(self, offsets: Iterable[int]) -> None:
        """Mark offsets as durably handled (written to the output or dead-letter topic)."""
        order, done = self._order, self._done
        if not order:
            return
        low = order[0]
        # An offset below the lowest outstanding one is already complete: a repeated ack
        # must not leave it in `done` forever.
        done.update(o for o in offsets if o >= low)
        while order and order[0] in done:
            done.discard(order.popleft())

    def commit_metadata(self) -> str:
        """What is complete above `committable`, as commit metadata (`completed_offsets`)."""
        if not self._done or not self._order:
            return ""
        return completed_offsets.encode(self._order[0], self._done)

    def committable(self) -> int | None:
        """The offset to commit: the lowest outstanding one, else one past the highest seen."""
        if self._order:
            return self._order[0]
        return self._next

    @property
    def outstanding(self) -> int:
        """How many registered records are not yet complete."""
        return len(self._order) - len(self._done)
