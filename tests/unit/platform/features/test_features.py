"""Each feature's value on hand-computed examples."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from streamplane.platform.features import FeatureEngine

from .events import encode, event, one_row, rows, run


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """Epoch milliseconds of a UTC wall-clock time."""
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp() * 1000)


def test_copied_columns_and_kafka_timestamp(engine: FeatureEngine) -> None:
    obj = event(event_id="e-9", tenant="globex", user_id="u-7", event_type="click", ts=42)
    batch = engine.transform(encode(obj), [1_700_000_000_123])
    [row] = rows(batch)
    assert row["event_id"] == "e-9"
    assert row["tenant"] == "globex"
    assert row["user_id"] == "u-7"
    assert row["event_type"] == "click"
    assert row["skill"] == "python"
    assert row["ts"] == 42
    assert row["src_timestamp_ms"] == 1_700_000_000_123


@pytest.mark.parametrize(
    ("ts", "hour", "day", "weekend"),
    [
        (0, 0, 4, False),  # the epoch: Thursday 1970-01-01 00:00
        (ms(2024, 1, 1, 0, 0), 0, 1, False),  # Monday
        (ms(2024, 1, 5, 17, 30), 17, 5, False),  # Friday
        (ms(2024, 1, 6, 13, 45), 13, 6, True),  # Saturday
        (ms(2024, 1, 7, 23, 59, 59) + 999, 23, 7, True),  # Sunday, last millisecond
        (ms(2024, 1, 8, 0, 0), 0, 1, False),  # the Monday after
        (-1, 23, 3, False),  # Wednesday 1969-12-31 23:59:59.999: floors, not truncates
        (-86_400_000, 0, 3, False),  # Wednesday 1969-12-31 00:00
        (ms(1969, 12, 27, 12, 0), 12, 6, True),  # a Saturday before the epoch
    ],
)
def test_time_features_are_utc(
    engine: FeatureEngine, ts: int, hour: int, day: int, weekend: bool
) -> None:
    row = one_row(engine, event(ts=ts))
    assert (row["hour_of_day"], row["day_of_week"], row["is_weekend"]) == (hour, day, weekend)


@pytest.mark.parametrize("ts", [-(2**63), 2**63 - 1])
def test_time_features_hold_at_the_ends_of_int64(engine: FeatureEngine, ts: int) -> None:
    row = one_row(engine, event(ts=ts))
    days, rest = divmod(ts, 86_400_000)
    assert row["hour_of_day"] == rest // 3_600_000
    assert row["day_of_week"] == (days + 3) % 7 + 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0.0),
        (1.5, math.log(2.5)),
        (math.e - 1, 1.0),
        (-3, -math.log(4)),  # sign(value) * ln(1 + |value|)
        (-0.5, -math.log(1.5)),
        (1e-20, 1e-20),  # log1p keeps tiny values exact where log(1 + x) gives 0
        (1e300, math.log1p(1e300)),
    ],
)
def test_value_log1p(engine: FeatureEngine, value: float, expected: float) -> None:
    row = one_row(engine, event(value=value))
    assert row["value"] == float(value)
    assert row["value_log1p"] == pytest.approx(expected, rel=1e-15, abs=0)


@pytest.mark.parametrize(
    ("event_type", "conversion"),
    [("purchase", True), ("signup", True), ("view", False), ("Purchase", False), ("", False)],
)
def test_is_conversion(engine: FeatureEngine, event_type: str, conversion: bool) -> None:
    assert one_row(engine, event(event_type=event_type))["is_conversion"] is conversion


def test_user_features_group_the_batch_by_user(engine: FeatureEngine) -> None:
    batch = run(
        engine,
        encode(
            event(user_id="a", value=1),
            event(user_id="b", value=10),
            event(user_id="a", value=2.5),
            event(user_id="c", value=-4),
            event(user_id="a", value=3),
            event(user_id="A", value=100),  # user ids are case-sensitive
        ),
    )
    columns = ("user_id", "user_events_in_batch", "user_value_sum_in_batch")
    got = [tuple(row[name] for name in columns) for row in rows(batch)]
    assert got == [
        ("a", 3, 6.5),
        ("b", 1, 10.0),
        ("a", 3, 6.5),
        ("c", 1, -4.0),
        ("a", 3, 6.5),
        ("A", 1, 100.0),
    ]


def test_user_features_ignore_invalid_records(engine: FeatureEngine) -> None:
    batch = run(
        engine,
        [
            *encode(event(user_id="a", value=1)),
            b'{"user_id": "a", "value": 1000',  # broken JSON
            *encode(event(user_id="a", value="7")),  # value of the wrong type
            *encode(event(user_id="a", value=2)),
        ],
    )
    assert batch.indices == [0, 3]
    assert [(r["user_events_in_batch"], r["user_value_sum_in_batch"]) for r in rows(batch)] == [
        (2, 3.0),
        (2, 3.0),
    ]


def test_user_features_depend_on_batch_boundaries(engine: FeatureEngine) -> None:
    events = encode(event(user_id="a", value=1), event(user_id="a", value=2))
    together = rows(run(engine, events))
    apart = rows(run(engine, events[:1])) + rows(run(engine, events[1:]))
    assert [r["user_events_in_batch"] for r in together] == [2, 2]
    assert [r["user_events_in_batch"] for r in apart] == [1, 1]


def test_an_overflowing_user_sum_is_null(engine: FeatureEngine) -> None:
    batch = run(engine, encode(event(value=1.5e308), event(value=1.5e308)))
    assert [r["user_value_sum_in_batch"] for r in rows(batch)] == [None, None]
    assert [r["value"] for r in rows(batch)] == [1.5e308, 1.5e308]


@pytest.mark.parametrize("skill", ["python", "", "日本語"])
def test_skill_is_copied(engine: FeatureEngine, skill: str) -> None:
    assert one_row(engine, event(skill=skill))["skill"] == skill


def test_null_skill_is_null(engine: FeatureEngine) -> None:
    assert one_row(engine, event(skill=None))["skill"] is None


def test_absent_skill_is_null(engine: FeatureEngine) -> None:
    obj = event()
    del obj["skill"]
    assert one_row(engine, obj)["skill"] is None


def test_unicode_and_escapes_round_trip(engine: FeatureEngine) -> None:
    strings = {
        "event_id": 'quote " backslash \\ newline \n tab \t nul \x00',
        "tenant": "Ünïcødé 🚀 テナント",
        "user_id": '},{"event_id":',  # the row separator of the encoder, as data
        "event_type": "\u2028\u2029 line separators",
        "skill": "emoji 👩‍💻",
    }
    batch = run(engine, encode(event(**strings), event(**strings)))
    assert len(batch.values) == 2
    for row in rows(batch):
        assert {key: row[key] for key in strings} == strings
        assert row["user_events_in_batch"] == 2


def test_extra_fields_are_ignored(engine: FeatureEngine) -> None:
    plain = one_row(engine, event())
    extra = one_row(engine, event(extra=[1, {"a": None}], value_log1p="spoof", nested={"x": 1}))
    assert extra == plain


def test_field_order_in_the_input_does_not_matter(engine: FeatureEngine) -> None:
    obj = event()
    reversed_obj = dict(reversed(list(obj.items())))
    assert one_row(engine, reversed_obj) == one_row(engine, obj)
