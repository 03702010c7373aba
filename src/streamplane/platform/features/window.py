"""The window feature set: heavier per-user features for big columnar batches.

Where the streaming features (`base`) turn a few hundred JSON records into rows, this set
takes an Arrow table of events, typically a million rows or more (a backfill batch), and
computes per-user and per-user-window aggregates with group-by aggregations joined back
to the events (never ``groupby().transform()``, which costs a GPU 12x more per call than
an aggregation). That is the workload where cuDF beats polars (see docs/gpu.md).

Contract that every window engine meets (the parity test checks polars against cuDF)
===================================================================================

Input: a `pyarrow.Table` with at least these columns (others are ignored):

==========  ==========  ===================================================
column      type        notes
==========  ==========  ===================================================
user_id     string      no nulls
event_type  string      no nulls
value       float64     nulls, NaN and infinities allowed; NaN counts as null
ts          int64       epoch ms, no nulls
==========  ==========  ===================================================

A null in ``user_id``, ``event_type`` or ``ts`` is a `ValueError`. Output: a table with
exactly `WINDOW_SCHEMA`'s columns, one row per input row, in input order. "The user's
rows" are the rows of the batch with the same ``user_id``; "valued" rows are those whose
value is neither null nor NaN. Windows are UTC calendar hours and days, by floor
division of ``ts`` (so pre-1970 times fall in the right window).

=======================  =======  =====================================================
column                   type     meaning
=======================  =======  =====================================================
user_events              int64    the user's rows
user_valued_events       int64    the user's valued rows
user_value_sum           float64  sum of their values; 0.0 when none; IEEE arithmetic
                                  (``inf + -inf`` is NaN, an overflow is ``inf``)
user_value_mean          float64  ``user_value_sum / user_valued_events``; null when
                                  no row is valued
user_value_min           float64  smallest value of the valued rows; null when none
user_value_max           float64  largest value of the valued rows; null when none
user_conversions         int64    the user's rows with event_type purchase or signup
user_first_ts            int64    smallest ts of the user's rows
user_last_ts             int64    largest ts of the user's rows
user_day_events          int64    the user's rows in the same UTC day
user_day_value_sum       float64  sum of their valued values (0.0 when none)
user_hour_events         int64    the user's rows in the same UTC hour
user_hour_value_sum      float64  sum of their valued values (0.0 when none)
=======================  =======  =====================================================

All aggregates are over the one table passed in: like the streaming ``*_in_batch``
columns they depend on where batch boundaries fall, which is why a backfill uses large
batches. Sums may add in another order on another engine, so floats are compared with a
tolerance relative to the magnitude of the terms; everything else is equal.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Final

import pyarrow as pa

from streamplane.platform.features.registry import load_class

WINDOW_INPUT_SCHEMA: Final = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("ts", pa.int64(), nullable=False),
    ]
)
"""The columns a window engine reads, as `check_window_input` hands them over."""

WINDOW_SCHEMA: Final = pa.schema(
    [
        pa.field("user_events", pa.int64()),
        pa.field("user_valued_events", pa.int64()),
        pa.field("user_value_sum", pa.float64()),
        pa.field("user_value_mean", pa.float64()),
        pa.field("user_value_min", pa.float64()),
        pa.field("user_value_max", pa.float64()),
        pa.field("user_conversions", pa.int64()),
        pa.field("user_first_ts", pa.int64()),
        pa.field("user_last_ts", pa.int64()),
        pa.field("user_day_events", pa.int64()),
        pa.field("user_day_value_sum", pa.float64()),
        pa.field("user_hour_events", pa.int64()),
        pa.field("user_hour_value_sum", pa.float64()),
    ]
)
"""The output columns, in order, with their types."""

WINDOW_COLUMNS: Final[tuple[str, ...]] = tuple(WINDOW_SCHEMA.names)

_WINDOW_ENGINES: dict[str, tuple[str, str]] = {
    "polars": ("streamplane.platform.features.window_polars", "PolarsWindowEngine"),
    "cudf": ("streamplane.platform.features.window_cudf", "CudfWindowEngine"),
}
WINDOW_ENGINE_NAMES: tuple[str, ...] = tuple(_WINDOW_ENGINES)
"""Names accepted by `get_window_engine` (the same as the streaming engines')."""


class WindowEngine(ABC):
    """Computes the window features of a table; see the module docstring for the contract."""

    name: ClassVar[str]

    @abstractmethod
    def compute(self, events: pa.Table) -> pa.Table:
        """Return `WINDOW_SCHEMA`'s columns for every row of `events`, in input order."""


def check_window_input(events: pa.Table) -> pa.Table:
    """The `WINDOW_INPUT_SCHEMA` columns of `events`, cast; `ValueError` if they break it."""
    missing = [name for name in WINDOW_INPUT_SCHEMA.names if name not in events.column_names]
    if missing:
        raise ValueError(f"window features need columns {missing}, absent from the input")
    columns = []
    for field in WINDOW_INPUT_SCHEMA:
        column = events.column(field.name)
        if not field.nullable and column.null_count:
            raise ValueError(
                f"column {field.name!r} has {column.null_count} nulls; it must have none"
            )
        columns.append(column.cast(field.type))
    return pa.Table.from_arrays(columns, schema=WINDOW_INPUT_SCHEMA)


def finish_window_output(computed: pa.Table, rows: int) -> pa.Table:
    """Select and cast an engine's result to `WINDOW_SCHEMA`, checking its length."""
    if computed.num_rows != rows:
        raise RuntimeError(f"window engine returned {computed.num_rows} rows for {rows}")
    return computed.select(list(WINDOW_COLUMNS)).cast(WINDOW_SCHEMA)


def empty_window_output() -> pa.Table:
    """The result for a table without rows."""
    return WINDOW_SCHEMA.empty_table()


def get_window_engine(name: str, *, setting: str = "WORKER_ENGINE") -> WindowEngine:
    """Return a new window engine by name, without trying it (see `get_engine`)."""
    try:
        module_name, class_name = _WINDOW_ENGINES[name]
    except KeyError:
        known = ", ".join(WINDOW_ENGINE_NAMES)
        raise ValueError(f"unknown feature engine {name!r}; expected one of: {known}") from None
    engine = load_class(module_name, class_name, name, setting)()
    if not isinstance(engine, WindowEngine):
        raise TypeError(f"{module_name}.{class_name} is not a WindowEngine")
    return engine
