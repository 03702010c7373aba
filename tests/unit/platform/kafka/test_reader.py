"""The reader applies an end-of-partition event only after the records of its batch."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from streamplane.platform.kafka import reader


class _Message:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


class _Consumer:
    """librdkafka's order: the EOF callback fires inside consume, before the caller sees
    the batch that holds the partition's last records."""

    def __init__(self) -> None:
        self.calls = 0

    def consume(
        self, _n: int, _timeout: float, on_eof: Callable[[int, int], None] | None = None
    ) -> list[Any]:
        self.calls += 1
        if self.calls > 1:
            return []
        assert on_eof is not None
        on_eof(0, 3)
        return [_Message(0, 0), _Message(0, 1), _Message(0, 2)]

    def pause(self, _partitions: object) -> None:
        pass


def test_a_tail_keeps_the_records_that_came_with_the_end_of_partition() -> None:
    read = reader._consume_until(_Consumer(), {0: 3}, time.monotonic() + 5)  # type: ignore[arg-type]
    assert [m.offset() for m in read.messages] == [0, 1, 2]
    assert read.complete


def test_a_range_keeps_the_records_that_came_with_the_end_of_partition() -> None:
    batches = list(reader._batches(_Consumer(), "t", {0: 3}, 10, time.monotonic() + 5))  # type: ignore[arg-type]
    assert [[m.offset() for m in b] for b in batches] == [[0, 1, 2]]
