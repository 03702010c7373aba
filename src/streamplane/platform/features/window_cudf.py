"""The window features on cuDF (GPU): the same three aggregations, merged back.

Only the four input columns go to the device (``from_arrow``) and only the window
columns come back (``to_arrow``); the caller keeps the pass-through columns on the host.
Each aggregation names one output column per source column (a dict of single
aggregations), so results have flat column names on every cuDF version. cuDF's merge
does not keep row order, so a row number travels with the events and one sort restores
it at the end. Importing this module fails without cuDF; `get_window_engine` turns that
into `EngineUnavailable`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import cudf  # type: ignore[import-not-found, unused-ignore]
import cupy  # type: ignore[import-not-found, unused-ignore]
import pyarrow as pa

from streamplane.platform.features.polars_engine import (
    CONVERSION_EVENT_TYPES,
    MS_PER_DAY,
    MS_PER_HOUR,
)
from streamplane.platform.features.window import (
    WINDOW_COLUMNS,
    WindowEngine,
    check_window_input,
    empty_window_output,
    finish_window_output,
)

# Output column -> (source column, aggregation), per grouping.
_BY_USER = {
    "user_events": ("ts", "count"),
    "user_valued_events": ("valued", "sum"),
    "user_value_sum": ("filled", "sum"),
    "user_value_min": ("value", "min"),
    "user_value_max": ("value", "max"),
    "user_conversions": ("conversion", "sum"),
    "user_first_ts": ("ts", "min"),
    "user_last_ts": ("ts", "max"),
}
_BY_DAY = {"user_day_events": ("ts", "count"), "user_day_value_sum": ("filled", "sum")}
_BY_HOUR = {"user_hour_events": ("ts", "count"), "user_hour_value_sum": ("filled", "sum")}


def _aggregate(work: Any, keys: list[str], spec: dict[str, tuple[str, str]]) -> Any:
    """Group `work` by `keys` and compute `spec`; the keys come back as columns."""
    source = cudf.DataFrame({key: work[key] for key in keys})
    for name, (column, _) in spec.items():
        source[name] = work[column]
    aggregated = source.groupby(keys, sort=False).agg(
        {name: how for name, (_, how) in spec.items()}
    )
    return aggregated.reset_index()


def compute_window_features(frame: Any) -> Any:
    """The window columns of a cuDF frame with the `WINDOW_INPUT_SCHEMA` columns, in order."""
    value = frame["value"].nans_to_nulls()  # NaN counts as null (the contract)
    ts = frame["ts"]
    work = cudf.DataFrame(
        {
            "row": cudf.Series(cupy.arange(len(frame), dtype="int64")),
            "user_id": frame["user_id"],
            "value": value,
            # Sums run over values with nulls as 0.0, so a group without values sums to
            # 0.0 as on polars (cuDF's sum of only nulls is null).
            "filled": value.fillna(0.0),
            "valued": value.notna().astype("int64"),
            "conversion": frame["event_type"].isin(list(CONVERSION_EVENT_TYPES)).astype("int64"),
            "ts": ts,
            # cuDF's // floors like Python's, so pre-1970 times land in the right window.
            "day": ts // MS_PER_DAY,
            "hour": ts // MS_PER_HOUR,
        }
    )
    joined = work[["row", "user_id", "day", "hour"]]
    joined = joined.merge(_aggregate(work, ["user_id"], _BY_USER), on=["user_id"], how="left")
    joined = joined.merge(
        _aggregate(work, ["user_id", "day"], _BY_DAY), on=["user_id", "day"], how="left"
    )
    joined = joined.merge(
        _aggregate(work, ["user_id", "hour"], _BY_HOUR), on=["user_id", "hour"], how="left"
    )
    joined = joined.sort_values("row")
    valued = joined["user_valued_events"]
    # where() leaves null where the condition is false: no valued row, no mean.
    joined["user_value_mean"] = (joined["user_value_sum"] / valued.astype("float64")).where(
        valued > 0
    )
    return joined[list(WINDOW_COLUMNS)]


class CudfWindowEngine(WindowEngine):
    """Window feature engine on cuDF (GPU)."""

    name: ClassVar[str] = "cudf"

    def compute(self, events: pa.Table) -> pa.Table:
        """See `WindowEngine.compute`."""
        checked = check_window_input(events)
        if not checked.num_rows:
            return empty_window_output()
        computed = compute_window_features(cudf.DataFrame.from_arrow(checked))
        # preserve_index=False: the row index is positional and must not become a column.
        return finish_window_output(computed.to_arrow(preserve_index=False), checked.num_rows)
