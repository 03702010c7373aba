"""Assign-only reads of a topic: a tail, or a range, up to the watermarks seen at start.

A reader joins no group and commits nothing, so no consumer group of the platform is
touched. The feature snapshot and the tools read topics this way.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from streamplane.platform.kafka.consumer import GroupConsumer
from streamplane.platform.kafka.exceptions import KafkaUnavailable
from streamplane.platform.kafka.types import Message

# Each consume call waits at most this long, so the deadline is checked often.
_CONSUME_WAIT_S = 0.2
# Records per consume call of a range read: large calls keep the per-call cost small
# at the million-row batches of a backfill.
_RANGE_CONSUME_MAX = 10_000


@dataclass(frozen=True)
class TopicRead:
    """What a read returned, and whether every partition reached its target offset."""

    messages: list[Message]
    complete: bool


def reader_config(conf: Mapping[str, object]) -> dict[str, object]:
    """An assign-only consumer: a throwaway group id (never joined), no commits."""
    return {
        **conf,
        "group.id": f"streamplane-reader-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        # librdkafka's 1 s default idles a consumer reading a backlog (FACTS.md).
        "fetch.queue.backoff.ms": 10,
    }


def read_tail(conf: Mapping[str, object], topic: str, count: int, timeout: float = 30) -> TopicRead:
    """About the last ``count`` records of ``topic``: ``ceil(count / partitions)`` each.

    Raises:
        KafkaUnavailable: no metadata or watermarks before the deadline, or no such topic.
    """
    deadline = time.monotonic() + timeout
    consumer = GroupConsumer(reader_config(conf))
    try:
        partitions = consumer.partitions_of(topic, _remaining(deadline))
        if partitions is None:
            raise KafkaUnavailable(f"topic {topic!r} is not readable")
        per_partition = math.ceil(count / len(partitions))
        starts: dict[tuple[str, int], int] = {}
        targets: dict[int, int] = {}
        for partition in partitions:
            low, high = consumer.watermarks((topic, partition), _remaining(deadline))
            start = max(low, high - per_partition)
            if high > start:
                starts[(topic, partition)] = start
                targets[partition] = high
        consumer.assign(starts)
        return _consume_until(consumer, targets, deadline)
    finally:
        consumer.close()


def _consume_until(consumer: GroupConsumer, targets: dict[int, int], deadline: float) -> TopicRead:
    """Consume until every partition reaches its target or the deadline passes."""
    pending = dict(targets)
    messages: list[Message] = []

    while pending and time.monotonic() < deadline:
        # An end-of-partition event fires inside consume, before this loop sees the
        # records of the same batch: it is applied after them, or they would be skipped.
        eofs: list[tuple[int, int]] = []
        for message in consumer.consume(500, _CONSUME_WAIT_S, on_eof=_collect(eofs)):
            partition, offset = message.partition(), message.offset()
            if partition not in pending or offset is None:
                continue
            if offset < pending[partition]:
                messages.append(message)
            if offset + 1 >= pending[partition]:
                del pending[partition]
        for partition, offset in eofs:
            if partition in pending and offset >= pending[partition]:
                del pending[partition]
    return TopicRead(messages, complete=not pending)


def _collect(ends: list[tuple[int, int]]) -> Callable[[int, int], None]:
    return lambda partition, offset: ends.append((partition, offset))


def read_range(
    conf: Mapping[str, object],
    topic: str,
    max_batch: int,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    timeout: float = 600,
) -> Iterator[list[Message]]:
    """The records of ``topic`` in a time range (all of it by default), in batches.

    A batch holds at most ``max_batch`` records; the last one may be shorter. The range
    ends at the watermarks seen at start (or at ``end_ms``, exclusive).

    Raises:
        KafkaUnavailable: no metadata or offsets in time, no such topic, or the deadline
            passed before every partition reached the end of the range.
    """
    deadline = time.monotonic() + timeout
    consumer = GroupConsumer(reader_config(conf))
    try:
        ends = _assign_range(consumer, topic, start_ms, end_ms, deadline)
        yield from _batches(consumer, topic, ends, max_batch, deadline)
    finally:
        consumer.close()


def _assign_range(
    consumer: GroupConsumer, topic: str, start_ms: int | None, end_ms: int | None, deadline: float
) -> dict[int, int]:
    """Assign each partition at the range's start; returns its end offset by partition."""
    partitions = consumer.partitions_of(topic, _remaining(deadline))
    if partitions is None:
        raise KafkaUnavailable(f"topic {topic!r} is not readable")
    marks = {p: consumer.watermarks((topic, p), _remaining(deadline)) for p in partitions}
    starts = {p: low for p, (low, _) in marks.items()}
    ends = {p: high for p, (_, high) in marks.items()}
    if start_ms is not None:
        at = consumer.offsets_for_times(topic, partitions, start_ms, _remaining(deadline))
        for p, offset in at.items():
            starts[p] = offset if offset >= 0 else ends[p]
    if end_ms is not None:
        at = consumer.offsets_for_times(topic, partitions, end_ms, _remaining(deadline))
        for p, offset in at.items():
            if offset >= 0:
                ends[p] = min(ends[p], offset)
    todo = {p: ends[p] for p in partitions if ends[p] > starts[p]}
    consumer.assign({(topic, p): starts[p] for p in todo})
    return todo


def _batches(
    consumer: GroupConsumer, topic: str, ends: dict[int, int], max_batch: int, deadline: float
) -> Iterator[list[Message]]:
    """Consume until every partition reaches its end, yielding full batches on the way."""
    pending = dict(ends)
    batch: list[Message] = []

    def reached(partition: int) -> None:
        consumer.pause([(topic, partition)])
        del pending[partition]

    while pending:
        if time.monotonic() >= deadline:
            raise KafkaUnavailable(
                f"the read deadline passed with partitions {sorted(pending)} short of the range end"
            )
        eofs: list[tuple[int, int]] = []  # applied after the batch's records, as above
        for message in consumer.consume(_RANGE_CONSUME_MAX, _CONSUME_WAIT_S, _collect(eofs)):
            partition, offset = message.partition(), message.offset()
            if partition not in pending:
                continue
            if offset < pending[partition]:
                batch.append(message)
                if len(batch) >= max_batch:
                    yield batch
                    batch = []
            if offset + 1 >= pending[partition]:
                reached(partition)
        for partition, offset in eofs:
            if partition in pending and offset >= pending[partition]:
                reached(partition)
    if batch:
        yield batch


def _remaining(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.01)
