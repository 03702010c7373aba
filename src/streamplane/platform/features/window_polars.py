"""The window features on polars (CPU): three group-by aggregations joined back."""

from __future__ import annotations

from typing import ClassVar, Final

import polars as pl
import pyarrow as pa

from streamplane.platform.features.polars_engine import (
    CONVERSION_EVENT_TYPES,
    MS_PER_DAY,
    MS_PER_HOUR,
)
from streamplane.platform.features.window import (
    WindowEngine,
    check_window_input,
    empty_window_output,
    finish_window_output,
)

_VALUE = pl.col("value")
_COUNT: Final = pl.len().cast(pl.Int64)
# NaN counts as null (the contract), so every aggregate below skips it the same way.
_PREPARE: Final = (
    pl.col("user_id"),
    _VALUE.fill_nan(None),
    pl.col("ts"),
    (pl.col("ts") // MS_PER_DAY).alias("day"),
    (pl.col("ts") // MS_PER_HOUR).alias("hour"),
    pl.col("event_type").is_in(CONVERSION_EVENT_TYPES).alias("conversion"),
)
_BY_USER: Final = (
    _COUNT.alias("user_events"),
    _VALUE.count().cast(pl.Int64).alias("user_valued_events"),
    _VALUE.sum().alias("user_value_sum"),
    _VALUE.min().alias("user_value_min"),
    _VALUE.max().alias("user_value_max"),
    pl.col("conversion").sum().cast(pl.Int64).alias("user_conversions"),
    pl.col("ts").min().alias("user_first_ts"),
    pl.col("ts").max().alias("user_last_ts"),
)
_MEAN: Final = (
    pl.when(pl.col("user_valued_events") > 0)
    .then(pl.col("user_value_sum") / pl.col("user_valued_events"))
    .otherwise(None)
    .alias("user_value_mean")
)


def compute_window_features(frame: pl.DataFrame) -> pl.DataFrame:
    """The window columns of a frame with the `WINDOW_INPUT_SCHEMA` columns, in row order."""
    work = frame.select(_PREPARE)
    user = work.group_by("user_id").agg(_BY_USER)
    day = work.group_by("user_id", "day").agg(
        _COUNT.alias("user_day_events"), _VALUE.sum().alias("user_day_value_sum")
    )
    hour = work.group_by("user_id", "hour").agg(
        _COUNT.alias("user_hour_events"), _VALUE.sum().alias("user_hour_value_sum")
    )
    # maintain_order="left": the join keeps the events' order, so no sort is needed.
    joined = (
        work.join(user, on="user_id", how="left", maintain_order="left")
        .join(day, on=["user_id", "day"], how="left", maintain_order="left")
        .join(hour, on=["user_id", "hour"], how="left", maintain_order="left")
    )
    return joined.with_columns(_MEAN)


class PolarsWindowEngine(WindowEngine):
    """Window feature engine on polars (CPU)."""

    name: ClassVar[str] = "polars"

    def compute(self, events: pa.Table) -> pa.Table:
        """See `WindowEngine.compute`."""
        checked = check_window_input(events)
        if not checked.num_rows:
            return empty_window_output()
        frame = pl.from_arrow(checked)
        assert isinstance(frame, pl.DataFrame)  # a Table gives a DataFrame
        return finish_window_output(compute_window_features(frame).to_arrow(), checked.num_rows)
