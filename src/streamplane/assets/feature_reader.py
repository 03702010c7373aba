"""Read the latest records of a topic into a polars DataFrame (no Dagster here).

An assign-only consumer (it joins no group and commits nothing, so no consumer group
of the platform is touched) reads the tail of every partition, about ``count`` records
in all, and stops at the high watermarks it saw when it started.
"""

from __future__ import annotations

import io
import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from streamplane.exceptions import TransientError

__all__ = ["FEATURE_SCHEMA", "REQUIRED_COLUMNS", "FeatureReadError", "TopicTail", "read_tail"]

FEATURE_SCHEMA: dict[str, pl.DataType] = {
    "event_id": pl.String(),
    "tenant": pl.String(),
    "user_id": pl.String(),
    "event_type": pl.String(),
    "skill": pl.String(),
    "value": pl.Float64(),
    "ts": pl.Int64(),
    "src_timestamp_ms": pl.Int64(),
    "value_log1p": pl.Float64(),
    "hour_of_day": pl.Int64(),
    "day_of_week": pl.Int64(),
    "is_weekend": pl.Boolean(),
    "is_conversion": pl.Boolean(),
    "user_events_in_batch": pl.Int64(),
    "user_value_sum_in_batch": pl.Float64(),
}
"""The feature record's columns (README "Feature records") as polars types."""

REQUIRED_COLUMNS: tuple[str, ...] = tuple(
    name for name in FEATURE_SCHEMA if name not in ("skill", "user_value_sum_in_batch")
)
"""Columns the feature contract never leaves null (``skill`` is optional, and the batch
sum is null when it overflows)."""

# Each consume call waits at most this long, so the deadline is checked often.
_CONSUME_WAIT_S = 0.2


class FeatureReadError(TransientError):
    """The topic could not be read (broker unreachable, topic missing) before the deadline."""


@dataclass(frozen=True)
class TopicTail:
    """The records read, and whether every partition was read up to its watermark."""

    frame: pl.DataFrame
    complete: bool


def read_tail(conf: Mapping[str, str], topic: str, count: int, timeout: float = 30) -> TopicTail:
    """Read about the last ``count`` records of ``topic`` (JSON objects) into a frame.

    Each partition contributes its last ``ceil(count / partitions)`` records; the frame
    has :data:`FEATURE_SCHEMA`'s columns (fields outside it are dropped).

    Raises:
        FeatureReadError: no metadata or watermarks before the deadline.
    """
    deadline = time.monotonic() + timeout
    consumer = Consumer(
        {
            **conf,
            "group.id": f"streamplane-snapshot-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            # librdkafka's 1 s default idles a consumer reading a backlog (FACTS.md).
            "fetch.queue.backoff.ms": 10,
        }
    )
    try:
        targets = _assign_tail(consumer, topic, count, deadline)
        values, complete = _consume_until(consumer, targets, deadline)
    except KafkaException as exc:
        raise FeatureReadError(f"reading {topic!r}: {exc}") from exc
    finally:
        consumer.close()
    return TopicTail(frame=_to_frame(values), complete=complete)


def _remaining(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.01)


def _assign_tail(consumer: Consumer, topic: str, count: int, deadline: float) -> dict[int, int]:
    """Assign each partition at its tail; returns the watermark to read up to, by partition."""
    described = consumer.list_topics(topic, timeout=_remaining(deadline)).topics.get(topic)
    if described is None or described.error is not None or not described.partitions:
        raise FeatureReadError(f"topic {topic!r} is not readable: {described and described.error}")
    per_partition = math.ceil(count / len(described.partitions))
    targets: dict[int, int] = {}
    assignment: list[TopicPartition] = []
    for partition in sorted(described.partitions):
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=_remaining(deadline)
        )
        start = max(low, high - per_partition)
        if high > start:
            targets[partition] = high
            assignment.append(TopicPartition(topic, partition, start))
    consumer.assign(assignment)
    return targets


def _consume_until(
    consumer: Consumer, targets: dict[int, int], deadline: float
) -> tuple[list[bytes], bool]:
    """Consume until every partition reaches its target or the deadline passes."""
    pending = dict(targets)
    values: list[bytes] = []
    while pending and time.monotonic() < deadline:
        for message in consumer.consume(num_messages=500, timeout=_CONSUME_WAIT_S):
            partition, offset = message.partition(), message.offset()
            error = message.error()
            if error is not None and error.code() != KafkaError._PARTITION_EOF:
                raise KafkaException(error)
            if partition not in pending or offset is None:
                continue
            value = message.value()
            if error is None and value is not None and offset < pending[partition]:
                values.append(bytes(value))
            if offset + (0 if error is not None else 1) >= pending[partition]:
                del pending[partition]
    return values, not pending


def _to_frame(values: list[bytes]) -> pl.DataFrame:
    """Parse JSON lines into a frame with exactly FEATURE_SCHEMA's columns."""
    if not values:
        return pl.DataFrame(schema=FEATURE_SCHEMA)
    frame = pl.read_ndjson(io.BytesIO(b"\n".join(values)), schema=FEATURE_SCHEMA)
    return frame.select(list(FEATURE_SCHEMA))
