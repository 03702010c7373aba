"""The GPU engine: the same features as the polars engine, computed with cuDF.

Parsing, validation and output encoding run on the host with the polars engine's code;
only the feature math runs on the GPU, from an Arrow table. A GPU pays off on large
columnar batches (hundreds of thousands of rows: snapshots, backfills), not on small
streaming tasks, where the host-to-device copy and cuDF's fixed cost per call dominate
(see shared/gpu/README.md for measurements).

Importing this module fails when cuDF cannot be loaded; `get_engine("cudf")` turns that
into `EngineUnavailable`, whose message names the extra to install.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

# A failure to import cuDF here (missing, no CUDA driver, ...) becomes EngineUnavailable
# in `registry.load_class`, which imports this module.
import cudf  # type: ignore[import-not-found, unused-ignore]
import polars as pl

from streamplane.platform.features.base import FeatureBatch, FeatureEngine
from streamplane.platform.features.polars_engine import (
    COMPUTED_COLUMNS,
    CONVERSION_EVENT_TYPES,
    EPOCH_ISO_WEEKDAY,
    MS_PER_DAY,
    MS_PER_HOUR,
    encode_features,
    input_frame,
)
from streamplane.platform.features.schema import parse_events


def compute_features(frame: Any) -> Any:
    """Return the `COMPUTED_COLUMNS` of a cuDF frame with the `INPUT_SCHEMA` columns.

    The time features use the same integer arithmetic as the polars engine; cuDF's `//`
    and `%` floor like Python's (pandas semantics), so pre-1970 timestamps get the same
    hour and weekday as on the CPU. The parity test covers them, int64's ends included.
    """
    value, ts = frame["value"], frame["ts"]
    day_of_week = (ts // MS_PER_DAY + (EPOCH_ISO_WEEKDAY - 1)) % 7 + 1
    # sign(value) without a ufunc: -1.0, 0.0 or 1.0.
    sign = (value > 0).astype("float64") - (value < 0).astype("float64")
    magnitude = value.abs()
    by_user = frame.groupby("user_id", sort=False)["value"]
    return cudf.DataFrame(
        {
            "value": value,
            "value_log1p": sign * _log1p(magnitude),
            "hour_of_day": (ts // MS_PER_HOUR) % 24,
            "day_of_week": day_of_week,
            "is_weekend": day_of_week >= 6,
            "is_conversion": frame["event_type"].isin(list(CONVERSION_EVENT_TYPES)),
            "user_events_in_batch": by_user.transform("count"),
            "user_value_sum_in_batch": by_user.transform("sum"),
        }
    )


def _log1p(series: Any) -> Any:
    """ln(1 + x) on the GPU via CuPy (a cuDF dependency), exact for tiny x."""
    import cupy  # type: ignore[import-not-found, unused-ignore]

    return cudf.Series(cupy.log1p(series.to_cupy()), index=series.index)


class CudfEngine(FeatureEngine):
    """Feature engine on cuDF (GPU)."""

    name: ClassVar[str] = "cudf"

    def transform(self, values: Sequence[bytes], timestamps_ms: Sequence[int]) -> FeatureBatch:
        """See `FeatureEngine.transform`."""
        events = parse_events(values, timestamps_ms)
        if not events.indices:
            return FeatureBatch(indices=[], values=[], errors=events.errors)
        # The Arrow handoff goes through the polars frame so that both engines cast
        # value to float64 the same way; oldest() gives large_string, which cuDF reads.
        table = input_frame(events).to_arrow(compat_level=pl.CompatLevel.oldest())
        computed = compute_features(cudf.DataFrame.from_arrow(table))
        # preserve_index=False: the row index is positional and must not become a column.
        arrow = computed.to_arrow(preserve_index=False)
        columns = [arrow.column(name).to_pylist() for name in COMPUTED_COLUMNS]
        return FeatureBatch(
            indices=events.indices,
            values=encode_features(events, columns),
            errors=events.errors,
        )
