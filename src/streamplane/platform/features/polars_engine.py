"""The CPU engine: features computed with polars expressions, one batch per call.

Only the four columns the features read go into polars; the string columns that are
merely copied to the output stay Python objects, since a round trip through polars
costs more than it saves at streaming batch sizes (hundreds of rows), where polars'
fixed cost per expression outweighs its per-row cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Final

import polars as pl

from streamplane.platform.features.base import FeatureBatch, FeatureEngine
from streamplane.platform.features.schema import ValidEvents, encode_rows, parse_events

MS_PER_HOUR: Final = 3_600_000
MS_PER_DAY: Final = 86_400_000
CONVERSION_EVENT_TYPES: Final = ("purchase", "signup")
# Day 0 of the epoch, 1970-01-01, was a Thursday: ISO weekday 4.
EPOCH_ISO_WEEKDAY: Final = 4

INPUT_SCHEMA: Final = pl.Schema(
    {"user_id": pl.String, "event_type": pl.String, "value": pl.Float64, "ts": pl.Int64}
)
"""The columnar input of the feature computation, shared with the cuDF engine."""

COMPUTED_COLUMNS: Final = (
    "value",
    "value_log1p",
    "hour_of_day",
    "day_of_week",
    "is_weekend",
    "is_conversion",
    "user_events_in_batch",
    "user_value_sum_in_batch",
)
"""What an engine computes, in this order; the rest of the output is copied from input."""

_VALUE = pl.col("value")
_TS = pl.col("ts")
# Floor division keeps pre-1970 timestamps right (-1 ms is 23:59 on a Wednesday);
# integer arithmetic also works for every int64, where datetime conversion does not.
_DAY_OF_WEEK = (_TS // MS_PER_DAY + (EPOCH_ISO_WEEKDAY - 1)) % 7 + 1
# Built once: constructing expressions per call would add to every batch.
_FEATURES: Final = (
    _VALUE,
    (_VALUE.sign() * _VALUE.abs().log1p()).alias("value_log1p"),
    ((_TS // MS_PER_HOUR) % 24).alias("hour_of_day"),
    _DAY_OF_WEEK.alias("day_of_week"),
    (_DAY_OF_WEEK >= 6).alias("is_weekend"),
    pl.col("event_type").is_in(CONVERSION_EVENT_TYPES).alias("is_conversion"),
    pl.len().over("user_id").alias("user_events_in_batch"),
    _VALUE.sum().over("user_id").alias("user_value_sum_in_batch"),
)


def input_frame(events: ValidEvents) -> pl.DataFrame:
    """The columns the features read, typed by `INPUT_SCHEMA` (value cast to float64)."""
    return pl.DataFrame(
        {
            "user_id": events.user_id,
            "event_type": events.event_type,
            "value": events.value,
            "ts": events.ts,
        },
        schema=INPUT_SCHEMA,
    )


def compute_features(frame: pl.DataFrame) -> pl.DataFrame:
    """Return the `COMPUTED_COLUMNS` of a frame with the `INPUT_SCHEMA` columns."""
    return frame.select(_FEATURES)


def encode_features(events: ValidEvents, computed: Sequence[Sequence[object]]) -> list[bytes]:
    """Encode output rows from the copied input columns and the computed ones.

    `computed` holds one column per name in `COMPUTED_COLUMNS`, in that order.
    """
    value, *features = computed
    copied = (events.event_id, events.tenant, events.user_id, events.event_type, events.skill)
    return encode_rows((*copied, value, events.ts, events.src_timestamp_ms, *features))


class PolarsEngine(FeatureEngine):
    """Feature engine on polars (CPU)."""

    name: ClassVar[str] = "polars"

    def transform(self, values: Sequence[bytes], timestamps_ms: Sequence[int]) -> FeatureBatch:
        """See `FeatureEngine.transform`."""
        events = parse_events(values, timestamps_ms)
        if not events.indices:
            return FeatureBatch(indices=[], values=[], errors=events.errors)
        computed = compute_features(input_frame(events))
        columns = [computed.get_column(name).to_list() for name in COMPUTED_COLUMNS]
        return FeatureBatch(
            indices=events.indices,
            values=encode_features(events, columns),
            errors=events.errors,
        )
