"""The named cases both parity checks run: polars vs cuDF (GPU) and polars vs reference (CPU).

Each streaming case is a list of batches (record values and Kafka timestamps); each
window case is an Arrow table. The comparison helpers accept floats within 1e-9
relative to the magnitude of what was added: a sum may add its terms in another order
on another engine, so its error is bounded by the sum of the terms' absolute values,
not by the (possibly tiny) result.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson
import pyarrow as pa

from streamplane.platform.features import FEATURE_COLUMNS, WINDOW_COLUMNS, FeatureBatch
from streamplane.platform.features.schema import parse_events

from .events import encode, event, without

TOLERANCE = 1e-9
Batch = tuple[list[bytes], list[int]]

MONDAY = 1_704_067_200_000  # 2024-01-01T00:00:00Z
DAY, HOUR = 86_400_000, 3_600_000
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def demo_batch(size: int, seed: int) -> Batch:
    """A mixed batch: shared users, pre-1970 times, int and float values, ~5% bad records."""
    rng = random.Random(seed)
    values: list[bytes] = []
    for i in range(size):
        obj = event(
            event_id=f"e-{i}",
            tenant=rng.choice(["acme", "globex", "テナント"]),
            user_id=f"u-{rng.randrange(size // 10 + 1)}",
            event_type=rng.choice(["view", "click", "purchase", "signup"]),
            value=rng.choice([rng.uniform(-1e6, 1e6), rng.randrange(-1000, 1000), 0, 1e-20]),
            ts=rng.randrange(-(10**12), 4 * 10**12),
            skill=rng.choice([None, "python", "go"]),
        )
        if rng.random() < 0.2:
            obj = without(obj, "skill")
        roll = rng.random()
        if roll < 0.02:
            values.append(b"{broken")
        elif roll < 0.05:
            values.append(encode({**obj, "value": "1"})[0])
        else:
            values.append(encode(obj)[0])
    return values, [rng.randrange(10**13) for _ in range(size)]


def _batch(*objects: object) -> Batch:
    values = [o if isinstance(o, bytes) else encode(o)[0] for o in objects]
    return values, [1000 + i for i in range(len(values))]


STREAM_CASES: dict[str, list[Batch]] = {
    "demo events": [
        demo_batch(size, seed) for size, seed in [(1, 0), (37, 1), (500, 2), (5000, 3)]
    ],
    "nulls": [
        _batch(
            event(skill=None),
            without(event(event_id="no-skill"), "skill"),
            event(user_id=None),  # a null required field: a schema error
            event(value=1.5e308, user_id="big"),
            event(value=1.5e308, user_id="big"),  # the user's sum overflows to null
        )
    ],
    "NaN and infinities": [
        _batch(
            b'{"event_id":"n","tenant":"t","user_id":"u","event_type":"v","value":NaN,"ts":1}',
            b'{"event_id":"i","tenant":"t","user_id":"u","event_type":"v","value":Infinity,"ts":1}',
            b'{"event_id":"o","tenant":"t","user_id":"u","event_type":"v","value":1e400,"ts":1}',
            event(value=1.7e308, user_id="edge"),
            event(value=-1.7e308, user_id="edge"),
            event(value=5e-324),  # the smallest subnormal
        )
    ],
    "negative values": [
        _batch(
            event(value=-0.0),
            event(value=-3),
            event(value=-2.5e-300, user_id="tiny"),
            event(value=-(2**63)),
            event(value=-123456.789, user_id="neg"),
            event(value=123456.789, user_id="neg"),  # sums to zero: the tolerance is relative
            event(ts=-1),
        )
    ],
    "unicode": [
        _batch(
            event(user_id="ユーザー", tenant="テナント", event_id="é"),
            event(user_id="ユーザー", event_type="purchase"),
            event(user_id="👩‍💻", skill="Ωmega"),
            event(user_id="e\u0301"),  # e + combining acute: not the same id as é
            event(user_id="é"),
            event(event_type="purch\u0430se"),  # a Cyrillic a: not a conversion
            event(user_id='},{"event_id":', event_type="signup"),
        )
    ],
    "empty batches": [([], []), ([b"{", b"[]", b"null"], [1, 2, 3])],
    "day and week boundaries": [
        _batch(
            *(
                event(event_id=f"b{i}", ts=ts, user_id="clock")
                for i, ts in enumerate(
                    [
                        MONDAY - 1,  # Sunday 23:59:59.999
                        MONDAY,  # Monday 00:00
                        MONDAY + DAY - 1,
                        MONDAY + 5 * DAY,  # Saturday
                        MONDAY + 6 * DAY + DAY - 1,  # Sunday, last ms
                        MONDAY + 7 * DAY,  # next Monday
                        MONDAY + HOUR - 1,
                        MONDAY + HOUR,
                        -1,  # 1969-12-31 23:59:59.999, a Wednesday
                        0,  # 1970-01-01, a Thursday
                        -DAY,
                        INT64_MIN,
                        INT64_MAX,
                    ]
                )
            )
        )
    ],
    "micro-batch window columns": [
        _batch(
            event(user_id="a", value=1),
            b"not json",
            event(user_id="b", value=2.5),
            event(user_id="a", value="bad"),  # invalid: never counts for user a
            event(user_id="a", value=4),
            *(event(user_id=f"many-{i % 3}", value=i / 7) for i in range(30)),
        ),
        # The same user in the next batch starts again from zero.
        _batch(event(user_id="a", value=10)),
    ],
}


def _window_from_stream(batches: list[Batch]) -> pa.Table:
    """The valid events of a streaming case as a window input table."""
    user_id: list[str] = []
    event_type: list[str] = []
    value: list[float] = []
    ts: list[int] = []
    for values, timestamps in batches:
        events = parse_events(values, timestamps)
        user_id += events.user_id
        event_type += events.event_type
        value += [float(v) for v in events.value]
        ts += events.ts
    return pa.table({"user_id": user_id, "event_type": event_type, "value": value, "ts": ts})


def _window(rows: Sequence[tuple[str, str, float | None, int]]) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [[], [], [], []]
    return pa.table(
        {
            "user_id": pa.array(columns[0], pa.string()),
            "event_type": pa.array(columns[1], pa.string()),
            "value": pa.array(columns[2], pa.float64()),
            "ts": pa.array(columns[3], pa.int64()),
        }
    )


NAN, INF = math.nan, math.inf
WINDOW_CASES: dict[str, pa.Table] = {
    **{name: _window_from_stream(batches) for name, batches in STREAM_CASES.items()},
    "window nulls": _window(
        [("a", "view", None, 1), ("a", "view", 2.0, 2), ("only-null", "view", None, 3)]
    ),
    "window NaN and infinities": _window(
        [
            ("nan", "view", NAN, 1),
            ("nan", "view", 1.0, 2),
            ("nan-only", "purchase", NAN, 3),
            ("inf", "view", INF, 4),
            ("inf", "view", -5.0, 5),
            ("ninf", "view", -INF, 6),
            ("both", "view", INF, 7),
            ("both", "view", -INF, 8),  # inf + -inf is NaN
            ("huge", "view", 1.5e308, 9),
            ("huge", "view", 1.5e308, 10),  # overflows to inf
        ]
    ),
    "window empty": _window([]),
}


# -- reference computations (plain Python, exact sums) ------------------------------------
def _fsum(values: list[float]) -> float:
    """Correctly rounded sum; inf when it overflows, IEEE results for infinities and NaN."""
    if any(math.isnan(v) for v in values) or (INF in values and -INF in values):
        return NAN
    if INF in values:
        return INF
    if -INF in values:
        return -INF
    try:
        return math.fsum(values)
    except OverflowError:
        return math.copysign(INF, sum(values))


def reference_stream(values: list[bytes], timestamps: list[int]) -> list[dict[str, Any]]:
    """The documented streaming features of one batch, row by row."""
    events = parse_events(values, timestamps)
    by_user: dict[str, list[float]] = defaultdict(list)
    for user, value in zip(events.user_id, events.value, strict=True):
        by_user[user].append(float(value))
    rows = []
    for i in range(len(events.indices)):
        value, ts, user = float(events.value[i]), events.ts[i], events.user_id[i]
        day_of_week = (ts // DAY + 3) % 7 + 1
        total = _fsum(by_user[user])
        rows.append(
            {
                "event_id": events.event_id[i],
                "tenant": events.tenant[i],
                "user_id": user,
                "event_type": events.event_type[i],
                "skill": events.skill[i],
                "value": value,
                "ts": ts,
                "src_timestamp_ms": events.src_timestamp_ms[i],
                "value_log1p": math.copysign(math.log1p(abs(value)), value) if value else 0.0,
                "hour_of_day": (ts // HOUR) % 24,
                "day_of_week": day_of_week,
                "is_weekend": day_of_week >= 6,
                "is_conversion": events.event_type[i] in ("purchase", "signup"),
                "user_events_in_batch": len(by_user[user]),
                "user_value_sum_in_batch": total if math.isfinite(total) else None,
            }
        )
    return rows


def reference_window(table: pa.Table) -> list[dict[str, Any]]:
    """The documented window features of one table, row by row."""
    users, types = table.column("user_id").to_pylist(), table.column("event_type").to_pylist()
    values = [None if v is None or math.isnan(v) else v for v in table.column("value").to_pylist()]
    stamps = table.column("ts").to_pylist()
    groups: dict[tuple[object, ...], list[int]] = defaultdict(list)
    for i, (user, ts) in enumerate(zip(users, stamps, strict=True)):
        groups[(user,)].append(i)
        groups[(user, "day", ts // DAY)].append(i)
        groups[(user, "hour", ts // HOUR)].append(i)

    def valued(key: tuple[object, ...]) -> list[float]:
        return [v for v in (values[j] for j in groups[key]) if v is not None]

    rows = []
    for user, ts in zip(users, stamps, strict=True):
        mine, known = groups[(user,)], valued((user,))
        total = _fsum(known)
        rows.append(
            {
                "user_events": len(mine),
                "user_valued_events": len(known),
                "user_value_sum": total,
                "user_value_mean": total / len(known) if known else None,
                "user_value_min": min(known) if known else None,
                "user_value_max": max(known) if known else None,
                "user_conversions": sum(types[j] in ("purchase", "signup") for j in mine),
                "user_first_ts": min(stamps[j] for j in mine),
                "user_last_ts": max(stamps[j] for j in mine),
                "user_day_events": len(groups[(user, "day", ts // DAY)]),
                "user_day_value_sum": _fsum(valued((user, "day", ts // DAY))),
                "user_hour_events": len(groups[(user, "hour", ts // HOUR)]),
                "user_hour_value_sum": _fsum(valued((user, "hour", ts // HOUR))),
            }
        )
    return rows


# -- comparison ----------------------------------------------------------------------------
def assert_close(name: str, expected: Any, actual: Any, scale: float = 0.0) -> None:
    """Equal, or for floats within TOLERANCE of max(|expected|, |actual|, scale)."""
    if type(expected) is float and type(actual) is float:
        if math.isnan(expected) or math.isnan(actual):
            assert math.isnan(expected), (name, expected, actual)
            assert math.isnan(actual), (name, expected, actual)
            return
        if math.isinf(expected) or math.isinf(actual):
            assert expected == actual, (name, expected, actual)
            return
        bound = TOLERANCE * max(abs(expected), abs(actual), scale)
        assert abs(expected - actual) <= bound, (name, expected, actual, bound)
    else:
        assert (type(actual), actual) == (type(expected), expected), (name, expected, actual)


def _abs_sums(users: list[str], values: list[float | None]) -> dict[str, float]:
    """Per user, the sum of |value| over finite values: the scale of any of its sums."""
    scale: dict[str, float] = defaultdict(float)
    for user, value in zip(users, values, strict=True):
        if value is not None and math.isfinite(value):
            scale[user] += abs(value)
    return scale


STREAM_SUMS = ("user_value_sum_in_batch",)
WINDOW_SUMS = ("user_value_sum", "user_day_value_sum", "user_hour_value_sum")


def assert_same_stream(expected: FeatureBatch | list[dict[str, Any]], actual: FeatureBatch) -> None:
    """Rows (and, between two engines, errors) agree, column by column."""
    if isinstance(expected, FeatureBatch):
        assert actual.indices == expected.indices
        assert actual.errors == expected.errors
        expected_rows = [orjson.loads(v) for v in expected.values]
    else:
        expected_rows = expected
    actual_rows = [orjson.loads(v) for v in actual.values]
    assert len(actual_rows) == len(expected_rows)
    scale = _abs_sums([r["user_id"] for r in expected_rows], [r["value"] for r in expected_rows])
    for want, got in zip(expected_rows, actual_rows, strict=True):
        assert tuple(got) == FEATURE_COLUMNS
        for name in FEATURE_COLUMNS:
            assert_close(
                name, want[name], got[name], scale[want["user_id"]] if name in STREAM_SUMS else 0.0
            )


def assert_same_window(
    table: pa.Table, expected: pa.Table | list[dict[str, Any]], actual: pa.Table
) -> None:
    """Window outputs agree, column by column; sums within 1e-9 of their terms' magnitude."""
    assert tuple(actual.column_names) == WINDOW_COLUMNS
    expected_rows = expected.to_pylist() if isinstance(expected, pa.Table) else expected
    actual_rows = actual.to_pylist()
    assert len(actual_rows) == len(expected_rows) == table.num_rows
    users = table.column("user_id").to_pylist()
    scale = _abs_sums(users, table.column("value").to_pylist())
    for user, want, got in zip(users, expected_rows, actual_rows, strict=True):
        for name in WINDOW_COLUMNS:
            bound = scale[user] if name in WINDOW_SUMS else 0.0
            if name == "user_value_mean" and want["user_valued_events"]:
                bound = scale[user] / want["user_valued_events"]
            assert_close(name, want[name], got[name], bound)
