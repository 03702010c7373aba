"""The interface: columns, their order and JSON types, engine lookup."""

from __future__ import annotations

import importlib.util
import math

import orjson
import pytest

from streamplane.exceptions import StreamplaneError
from streamplane.platform.features import (
    ENGINE_NAMES,
    FEATURE_COLUMNS,
    EngineUnavailable,
    FeatureEngine,
    get_engine,
)
from streamplane.platform.features.polars_engine import COMPUTED_COLUMNS, PolarsEngine
from streamplane.platform.features.schema import _Row, encode_rows

from .events import encode, event, one_row, run

EXPECTED_COLUMNS = (
    "event_id",
    "tenant",
    "user_id",
    "event_type",
    "skill",
    "value",
    "ts",
    "src_timestamp_ms",
    "value_log1p",
    "hour_of_day",
    "day_of_week",
    "is_weekend",
    "is_conversion",
    "user_events_in_batch",
    "user_value_sum_in_batch",
)


def test_feature_columns_are_the_documented_ones_in_order() -> None:
    assert FEATURE_COLUMNS == EXPECTED_COLUMNS


def test_output_objects_list_the_columns_in_order(engine: FeatureEngine) -> None:
    assert tuple(one_row(engine, event())) == FEATURE_COLUMNS


def test_computed_columns_are_output_columns() -> None:
    assert set(COMPUTED_COLUMNS) <= set(FEATURE_COLUMNS)


def test_the_row_builder_takes_the_columns_in_order() -> None:
    assert _Row.__struct_fields__ == FEATURE_COLUMNS


def test_output_json_types(engine: FeatureEngine) -> None:
    row = one_row(engine, event(value=3, skill=None))
    for name in ("event_id", "tenant", "user_id", "event_type"):
        assert type(row[name]) is str
    assert row["skill"] is None
    for name in ("value", "value_log1p", "user_value_sum_in_batch"):
        assert type(row[name]) is float, name
    for name in ("ts", "src_timestamp_ms", "hour_of_day", "day_of_week", "user_events_in_batch"):
        assert type(row[name]) is int, name
    for name in ("is_weekend", "is_conversion"):
        assert type(row[name]) is bool, name


def test_an_integer_value_is_written_as_a_float(engine: FeatureEngine) -> None:
    batch = run(engine, encode(event(value=3)))
    assert b'"value":3.0,' in batch.values[0]


def test_output_is_compact_json_one_object_per_row(engine: FeatureEngine) -> None:
    batch = run(engine, encode(event(event_id="a"), event(event_id="b")))
    assert len(batch.values) == 2
    for value in batch.values:
        assert value.startswith(b'{"event_id":')
        assert value.endswith(b"}")
        assert b"\n" not in value
        assert b", " not in value


def test_encode_rows_writes_an_overflowed_float_as_null() -> None:
    columns: list[list[object]] = [[name] for name in FEATURE_COLUMNS]
    columns[-1] = [math.inf]
    [row] = encode_rows(columns)
    assert orjson.loads(row)["user_value_sum_in_batch"] is None


def test_encode_rows_keeps_every_float_and_string_as_written() -> None:
    floats = [1e22, -1e-7, 5e-324, 1.7976931348623157e308, -0.0, 0.1, 123456789.123]
    texts = ['a"},{"event_id":1', "line\nbreak", "\u00e9\U0001f600", "\x00\x1f"]
    columns: list[list[object]] = [[name] * len(floats) for name in FEATURE_COLUMNS]
    columns[FEATURE_COLUMNS.index("value")] = list(floats)
    columns[FEATURE_COLUMNS.index("tenant")] = [texts[i % len(texts)] for i in range(len(floats))]
    rows = [orjson.loads(row) for row in encode_rows(columns)]
    assert [row["value"] for row in rows] == floats
    assert [row["tenant"] for row in rows] == columns[FEATURE_COLUMNS.index("tenant")]
    assert all(list(row) == list(FEATURE_COLUMNS) for row in rows)


def test_encode_rows_rejects_the_wrong_number_of_columns() -> None:
    with pytest.raises(ValueError, match="columns"):
        encode_rows([[1]])


def test_encode_rows_of_nothing_is_nothing() -> None:
    assert encode_rows([[] for _ in FEATURE_COLUMNS]) == []


def test_mismatched_timestamps_are_rejected(engine: FeatureEngine) -> None:
    with pytest.raises(ValueError, match="timestamps"):
        engine.transform(encode(event()), [])


def test_get_engine_polars() -> None:
    engine = get_engine("polars")
    assert isinstance(engine, PolarsEngine)
    assert engine.name == "polars"
    assert "polars" in ENGINE_NAMES


def test_get_engine_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown feature engine 'pandas'"):
        get_engine("pandas")


@pytest.mark.skipif(importlib.util.find_spec("cudf") is not None, reason="cudf is installed here")
def test_get_engine_cudf_without_cudf_names_the_extra() -> None:
    with pytest.raises(EngineUnavailable, match="`gpu` extra") as info:
        get_engine("cudf")
    assert "gpu-cu13" in str(info.value)
    assert isinstance(info.value, StreamplaneError)
    assert "cuDF is not installed" in str(info.value)
