"""Read the latest records of a topic into a polars DataFrame (no Dagster here).

The Kafka layer's assign-only reader (it joins no group and commits nothing) reads the
tail of every partition, about ``count`` records in all, up to the high watermarks it
saw when it started.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from streamplane.exceptions import TransientError
from streamplane.platform.kafka import reader
from streamplane.platform.kafka.exceptions import KafkaPlatformError

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
    try:
        read = reader.read_tail(conf, topic, count, timeout)
    except KafkaPlatformError as exc:
        raise FeatureReadError(f"reading {topic!r}: {exc}") from exc
    values = [bytes(v) for m in read.messages if (v := m.value()) is not None]
    return TopicTail(frame=_to_frame(values), complete=read.complete)


def _to_frame(values: list[bytes]) -> pl.DataFrame:
    """Parse JSON lines into a frame with exactly FEATURE_SCHEMA's columns."""
    if not values:
        return pl.DataFrame(schema=FEATURE_SCHEMA)
    frame = pl.read_ndjson(io.BytesIO(b"\n".join(values)), schema=FEATURE_SCHEMA)
    return frame.select(list(FEATURE_SCHEMA))
