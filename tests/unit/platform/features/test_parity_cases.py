"""The parity cases, run on CPU: polars against the plain-Python reference of the contract.

The GPU parity test (test_parity.py) runs the same cases through cuDF; here they are
exercised where no GPU is, so a wrong case or a comparator that cannot fail shows up
before the GPU run.
"""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from streamplane.platform.features import get_engine, get_window_engine

from .parity_cases import (
    STREAM_CASES,
    WINDOW_CASES,
    assert_close,
    assert_same_stream,
    assert_same_window,
    reference_stream,
    reference_window,
)

POLARS = get_engine("polars")
POLARS_WINDOW = get_window_engine("polars")
ISSUE_CASES = {
    "demo events",
    "nulls",
    "NaN and infinities",
    "negative values",
    "unicode",
    "empty batches",
    "day and week boundaries",
    "micro-batch window columns",
}


def test_the_cases_are_the_ones_the_issue_lists() -> None:
    assert set(STREAM_CASES) == ISSUE_CASES
    assert set(WINDOW_CASES) > ISSUE_CASES
    assert {"window nulls", "window NaN and infinities", "window empty"} <= set(WINDOW_CASES)


@pytest.mark.parametrize("case", sorted(STREAM_CASES))
def test_polars_streaming_features_match_the_reference(case: str) -> None:
    for values, timestamps in STREAM_CASES[case]:
        expected = reference_stream(values, timestamps)
        assert_same_stream(expected, POLARS.transform(values, timestamps))


@pytest.mark.parametrize("case", sorted(WINDOW_CASES))
def test_polars_window_features_match_the_reference(case: str) -> None:
    table = WINDOW_CASES[case]
    assert_same_window(table, reference_window(table), POLARS_WINDOW.compute(table))


def test_window_features_ignore_extra_columns_and_keep_row_order() -> None:
    table = WINDOW_CASES["demo events"]
    shuffled = table.take(list(reversed(range(table.num_rows))))
    extra = shuffled.append_column("tenant", pa.array(["x"] * table.num_rows))
    assert_same_window(shuffled, reference_window(shuffled), POLARS_WINDOW.compute(extra))


@pytest.mark.parametrize("column", ["user_id", "event_type", "ts"])
def test_window_input_without_nulls_where_required(column: str) -> None:
    table = WINDOW_CASES["window nulls"]
    broken = table.set_column(
        table.column_names.index(column),
        column,
        pa.nulls(table.num_rows, table.schema.field(column).type),
    )
    with pytest.raises(ValueError, match=f"column {column!r} has 3 nulls"):
        POLARS_WINDOW.compute(broken)


def test_window_input_needs_its_columns() -> None:
    with pytest.raises(ValueError, match=r"\['value'\]"):
        POLARS_WINDOW.compute(WINDOW_CASES["window nulls"].drop_columns(["value"]))


def test_the_comparator_rejects_what_it_must() -> None:
    assert_close("x", 1.0, 1.0 + 1e-12)
    assert_close("sum", 1e-6, 2e-6, scale=1e4)  # within 1e-9 of the terms' magnitude
    for expected, actual in [(1.0, 1.0 + 1e-8), (math.nan, 1.0), (math.inf, 1e308), (1, 1.0)]:
        with pytest.raises(AssertionError):
            assert_close("x", expected, actual)
    with pytest.raises(AssertionError):
        assert_close("sum", 1e-6, 2e-6, scale=1.0)
