"""Bad records are reported per record and never fail the rest of the batch."""

from __future__ import annotations

import pytest

from streamplane.platform.features import FeatureEngine, RecordError

from .events import encode, event, rows, run, without

MS = "field 'ts' must be an integer of epoch milliseconds,"


def only_error(engine: FeatureEngine, value: bytes) -> RecordError:
    """Transform a bad record between two good ones and return its error."""
    good = encode(event(event_id="before"), event(event_id="after"))
    batch = run(engine, [good[0], value, good[1]])
    assert batch.indices == [0, 2]
    assert [row["event_id"] for row in rows(batch)] == ["before", "after"]
    [error] = batch.errors
    assert error.index == 1
    return error


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"not json",
        b'{"event_id": "e-1"',
        b'{"event_id": "e-1"} trailing',
        b"\xff\xfe",
        b'{"value": NaN}',
        b'{"value": 1e400}',
        b'{"a": "\\ud800"}',  # a lone surrogate escape
    ],
)
def test_malformed_json_is_a_parse_error(engine: FeatureEngine, value: bytes) -> None:
    error = only_error(engine, value)
    assert error.kind == "parse"
    assert error.reason.startswith("invalid JSON: ")


@pytest.mark.parametrize(
    ("value", "json_type"),
    [
        (b"[1, 2]", "array"),
        (b'"a string"', "string"),
        (b"42", "integer"),
        (b"4.2", "number"),
        (b"true", "boolean"),
        (b"null", "null"),
    ],
)
def test_json_that_is_not_an_object_is_a_parse_error(
    engine: FeatureEngine, value: bytes, json_type: str
) -> None:
    assert only_error(engine, value) == RecordError(
        1, "parse", f"expected a JSON object, got {json_type}"
    )


@pytest.mark.parametrize("field", ["event_id", "tenant", "user_id", "event_type", "value", "ts"])
def test_missing_required_field(engine: FeatureEngine, field: str) -> None:
    [value] = encode(without(event(), field))
    assert only_error(engine, value) == RecordError(1, "schema", f"missing field {field!r}")


@pytest.mark.parametrize("field", ["event_id", "tenant", "user_id", "event_type", "value", "ts"])
def test_null_required_field(engine: FeatureEngine, field: str) -> None:
    [value] = encode(event(**{field: None}))
    assert only_error(engine, value) == RecordError(1, "schema", f"field {field!r} is null")


@pytest.mark.parametrize(
    ("field", "bad", "reason"),
    [
        ("value", "1.5", "field 'value' must be a number, got string"),
        ("value", True, "field 'value' must be a number, got boolean"),
        ("value", False, "field 'value' must be a number, got boolean"),
        ("value", [1], "field 'value' must be a number, got array"),
        (
            "ts",
            1.0,
            f"{MS} got number (1.0 looks like epoch seconds: send round(seconds * 1000))",
        ),
        (
            "ts",
            1_700_000_000.25,
            f"{MS} got number (1700000000.25 looks like epoch seconds: send round(seconds * 1000))",
        ),
        ("ts", 1.5e12, f"{MS} got number"),
        ("ts", "1700000000000", f"{MS} got string"),
        ("ts", True, f"{MS} got boolean"),
        ("ts", 2**63, "field 'ts' does not fit in a 64-bit integer"),
        ("ts", -(2**63) - 1, f"{MS} got number"),  # orjson reads it as a float
        ("user_id", 7.0, "field 'user_id' must be a string or an integer, got number"),
        ("user_id", True, "field 'user_id' must be a string or an integer, got boolean"),
        ("user_id", ["u"], "field 'user_id' must be a string or an integer, got array"),
        ("event_id", {"id": 1}, "field 'event_id' must be a string, got object"),
        ("tenant", False, "field 'tenant' must be a string, got boolean"),
        ("skill", 3, "field 'skill' must be a string or null, got integer"),
        ("skill", ["py"], "field 'skill' must be a string or null, got array"),
    ],
)
def test_wrong_types_are_schema_errors(
    engine: FeatureEngine, field: str, bad: object, reason: str
) -> None:
    [value] = encode(event(**{field: bad}))
    assert only_error(engine, value) == RecordError(1, "schema", reason)


@pytest.mark.parametrize(
    ("user_id", "text"), [(7, "7"), (-3, "-3"), (0, "0"), (2**64 - 1, str(2**64 - 1))]
)
def test_an_integer_user_id_becomes_its_decimal_string(
    engine: FeatureEngine, user_id: int, text: str
) -> None:
    batch = run(engine, encode(event(user_id=user_id), event(user_id=text)))
    assert batch.errors == []
    first, second = rows(batch)
    assert first["user_id"] == second["user_id"] == text
    # the same user either way, so the per-user window features count them together
    assert first["user_events_in_batch"] == 2


def test_a_tombstone_is_a_parse_error(engine: FeatureEngine) -> None:
    batch = run(engine, [None, *encode(event())])  # type: ignore[list-item]
    assert batch.indices == [1]
    [error] = batch.errors
    assert (error.index, error.kind) == (0, "parse")


def test_large_integer_values_are_numbers(engine: FeatureEngine) -> None:
    batch = run(engine, encode(event(value=2**64 - 1), event(value=-(2**63))))
    assert batch.errors == []
    assert [row["value"] for row in rows(batch)] == [float(2**64 - 1), float(-(2**63))]


def test_empty_batch(engine: FeatureEngine) -> None:
    batch = engine.transform([], [])
    assert (batch.indices, batch.values, batch.errors) == ([], [], [])


def test_a_batch_that_is_entirely_bad(engine: FeatureEngine) -> None:
    values = [b"{", b"[]", *encode(without(event(), "ts"), event(value="x"))]
    batch = run(engine, values)
    assert batch.indices == []
    assert batch.values == []
    assert [(error.index, error.kind) for error in batch.errors] == [
        (0, "parse"),
        (1, "parse"),
        (2, "schema"),
        (3, "schema"),
    ]


def test_errors_come_in_input_order_and_cover_every_bad_index(engine: FeatureEngine) -> None:
    good = encode(event())[0]
    values = [b"x", good, b"1", good, good, *encode(event(ts=None)), good]
    batch = run(engine, values)
    assert batch.indices == [1, 3, 4, 6]
    assert [error.index for error in batch.errors] == [0, 2, 5]
    assert len(batch.values) == len(batch.indices)


def test_the_kafka_timestamps_stay_with_their_records(engine: FeatureEngine) -> None:
    values = [b"bad", *encode(event(event_id="a")), b"bad", *encode(event(event_id="b"))]
    batch = engine.transform(values, [10, 11, 12, 13])
    assert [(r["event_id"], r["src_timestamp_ms"]) for r in rows(batch)] == [("a", 11), ("b", 13)]


def _nested(depth: int, opener: bytes, leaf: bytes, closer: bytes) -> bytes:
    return opener * depth + leaf + closer * depth


@pytest.mark.parametrize(
    "value",
    [
        _nested(100_000, b'{"a":', b"1", b"}"),
        _nested(100_000, b"[", b"", b"]"),
        encode(event())[0][:-1] + b',"extra":' + _nested(5_000, b'{"a":', b"1", b"}") + b"}",
        encode(event())[0][:-1] + b',"extra":' + _nested(5_000, b"[", b"", b"]") + b"}",
    ],
    ids=["object-100k", "array-100k", "extra-object-5k", "extra-array-5k"],
)
def test_deeply_nested_json_is_a_parse_error(engine: FeatureEngine, value: bytes) -> None:
    # msgspec raises RecursionError on deep nesting where orjson stops at its depth
    # limit: either way it is this record's parse error, never the whole task's failure.
    error = only_error(engine, value)
    assert error.kind == "parse"
    assert error.reason.startswith("invalid JSON: "), error.reason
