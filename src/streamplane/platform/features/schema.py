"""The wire format of the feature transform, shared by every engine.

Parsing and validation of input events run on the host, the same for every engine, so
engines differ only in how they compute features. Output rows are encoded here too, so
that engines produce the same bytes for the same numbers.

Speed matters: this runs on every record of the stream. Measured on the 2-core CI-like
machine (see scripts/bench_features.py), `orjson.loads` plus exact type checks cost
~2.7 us of CPU a record, msgspec's typed decoder ~0.9 us: msgspec is the fast path and
the orjson path the reference that decides every record msgspec refuses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final

import msgspec
import orjson

from streamplane.platform.features.base import FEATURE_COLUMNS, RecordError

REQUIRED_FIELDS: Final = ("event_id", "tenant", "user_id", "event_type", "value", "ts")
"""Input fields that must be present and non-null, in the order `ValidEvents` keeps them."""
OPTIONAL_FIELD: Final = "skill"

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_required = itemgetter(*REQUIRED_FIELDS)


@dataclass(frozen=True, slots=True)
class ValidEvents:
    """The valid records of a batch, as columns aligned with `indices`.

    `value` holds Python ints and floats as JSON gave them; engines cast it to float64.
    """

    indices: list[int]
    errors: list[RecordError]
    event_id: Sequence[str]
    tenant: Sequence[str]
    user_id: Sequence[str]
    event_type: Sequence[str]
    value: Sequence[int | float]
    ts: Sequence[int]
    skill: Sequence[str | None]
    src_timestamp_ms: Sequence[int]


class _Event(msgspec.Struct, gc=False):
    """The demo event's schema, for msgspec's typed decoder (the fast path)."""

    event_id: str
    tenant: str
    user_id: str
    event_type: str
    value: float
    ts: int
    skill: str | None = None


_decode_event = msgspec.json.Decoder(_Event).decode
# Past this magnitude msgspec and orjson may judge a number differently (orjson refuses
# integers beyond 64 bits): such records take the reference path, which decides.
_FAST_VALUE_LIMIT: Final = 2.0**63


def parse_events(values: Sequence[bytes], timestamps_ms: Sequence[int]) -> ValidEvents:
    """Parse and validate a batch; bad records become `RecordError`s, never exceptions.

    msgspec's typed decoder parses and type-checks a good record in one C call, about 3x
    faster than `orjson.loads` plus checks. Whatever it refuses (or might judge
    differently at the edges) goes through `_parse_one`, the reference path, which
    gives the verdict and the reason, so both paths accept exactly the same records.
    """
    if len(values) != len(timestamps_ms):
        raise ValueError(
            f"got {len(values)} values but {len(timestamps_ms)} timestamps; they must align"
        )
    # RecursionError: msgspec recurses into nested values (an unknown field's too) and
    # gives up past the interpreter's limit; the reference path then judges the record.
    decode, fast_errors = _decode_event, (msgspec.DecodeError, TypeError, RecursionError)
    indices: list[int] = []
    rows: list[tuple[Any, ...]] = []
    errors: list[RecordError] = []
    for index, raw in enumerate(values):
        try:
            e = decode(raw)
        except fast_errors:
            e = None
        if (
            e is not None
            and _INT64_MIN <= e.ts <= _INT64_MAX
            and -_FAST_VALUE_LIMIT < e.value < _FAST_VALUE_LIMIT
        ):
            indices.append(index)
            rows.append((e.event_id, e.tenant, e.user_id, e.event_type, e.value, e.ts, e.skill))
            continue
        row_or_error = _parse_one(index, raw)
        if isinstance(row_or_error, RecordError):
            errors.append(row_or_error)
        else:
            indices.append(index)
            rows.append(row_or_error)
    return _columns(indices, errors, rows, timestamps_ms)


def _parse_one(index: int, raw: bytes) -> tuple[Any, ...] | RecordError:
    """The reference parse of one record: orjson, then exact type checks."""
    try:
        obj = orjson.loads(raw)
    # orjson raises this for non-bytes input too, a None tombstone value included.
    except orjson.JSONDecodeError as exc:
        return RecordError(index, "parse", f"invalid JSON: {exc.msg}")
    except RecursionError:
        # orjson stops at 1024 levels on its own; this keeps a record a record's error
        # should any decoder recurse deeper than the interpreter allows.
        return RecordError(index, "parse", "invalid JSON: nested too deeply")
    if type(obj) is not dict:
        return RecordError(index, "parse", f"expected a JSON object, got {_json_type(obj)}")
    try:
        row = _required(obj)
    except KeyError:
        return RecordError(index, "schema", _schema_reason(obj))
    skill = obj.get(OPTIONAL_FIELD)
    if type(row[2]) is int:
        # Producers commonly send numeric user ids: an integer (never a boolean or a
        # float, whose text is ambiguous) becomes its decimal string, documented in base.
        row = (*row[:2], str(row[2]), *row[3:])
    # Exact type checks, not isinstance: bool is a subclass of int and must not pass as a
    # number. orjson yields only exact built-in types, so this loses nothing.
    if (
        type(row[0]) is str
        and type(row[1]) is str
        and type(row[2]) is str
        and type(row[3]) is str
        and (type(row[4]) is float or type(row[4]) is int)
        and type(row[5]) is int
        and _INT64_MIN <= row[5] <= _INT64_MAX
        and (skill is None or type(skill) is str)
    ):
        return (*row, skill)
    return RecordError(index, "schema", _schema_reason(obj))


def _columns(
    indices: list[int],
    errors: list[RecordError],
    rows: list[tuple[Any, ...]],
    timestamps_ms: Sequence[int],
) -> ValidEvents:
    """Transpose the valid rows into columns (zip runs in C, unlike a loop per column)."""
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [()] * 7
    event_id, tenant, user_id, event_type, value, ts, skill = columns
    return ValidEvents(
        indices=indices,
        errors=errors,
        event_id=event_id,
        tenant=tenant,
        user_id=user_id,
        event_type=event_type,
        value=value,
        ts=ts,
        skill=skill,
        src_timestamp_ms=[timestamps_ms[i] for i in indices],
    )


def _schema_reason(obj: dict[str, Any]) -> str:
    """Say what is wrong with an object that failed validation (slow path, bad rows only)."""
    for field in REQUIRED_FIELDS:
        if field not in obj:
            return f"missing field {field!r}"
        field_value = obj[field]
        if field_value is None:
            return f"field {field!r} is null"
        expected, type_ok = _FIELD_TYPES.get(field, _STRING)
        if not type_ok(field_value):
            return f"field {field!r} must be {expected}, got {_json_type(field_value)}" + (
                _seconds_hint(field_value) if field == "ts" else ""
            )
    if not _INT64_MIN <= obj["ts"] <= _INT64_MAX:
        return "field 'ts' does not fit in a 64-bit integer"
    got = _json_type(obj[OPTIONAL_FIELD])
    return f"field {OPTIONAL_FIELD!r} must be a string or null, got {got}"


# Below this a numeric ts is more likely epoch seconds than milliseconds: 1e11 ms is
# 1973-03-03, 1e11 s is the year 5138.
_SECONDS_BELOW: Final = 1e11


def _seconds_hint(ts: object) -> str:
    """Tell a producer that sends epoch seconds what to send instead."""
    if type(ts) is not float or not abs(ts) < _SECONDS_BELOW:
        return ""
    return f" ({ts!r} looks like epoch seconds: send round(seconds * 1000))"


_STRING: Final = ("a string", lambda v: type(v) is str)
_FIELD_TYPES: Final[dict[str, tuple[str, Callable[[object], bool]]]] = {
    "user_id": ("a string or an integer", lambda v: type(v) is str or type(v) is int),
    "value": ("a number", lambda v: type(v) is int or type(v) is float),
    "ts": ("an integer of epoch milliseconds", lambda v: type(v) is int),
}


def _json_type(obj: object) -> str:
    """Name a parsed JSON value's type the way JSON does (a bool is not a number)."""
    if obj is None:
        return "null"
    if type(obj) is bool:
        return "boolean"
    if type(obj) is int:
        return "integer"
    if type(obj) is float:
        return "number"
    if type(obj) is str:
        return "string"
    if type(obj) is list:
        return "array"
    return "object"


# One output row: a msgspec Struct whose fields are FEATURE_COLUMNS, in order, so the
# encoder writes the keys in output order (a test pins it). Building a Struct from
# positional columns and encoding a list of them costs ~0.65 us per row against ~1.0 us
# for a dict per row through orjson (2,000 demo rows, one batch call each). The bytes
# differ from orjson's only in exponents ("1e22", orjson "1e+22"), the same numbers.
_Row: Final = msgspec.defstruct("_Row", [(name, object) for name in FEATURE_COLUMNS])
_encode: Final = msgspec.json.Encoder().encode


# Row separator in the one-call encoding below. In msgspec's compact output every '"'
# inside a string is escaped, so '{"event_id":' can only be the start of a row object
# (rows hold no nested objects and event_id is their first key); and it never emits a
# raw newline, so one may be inserted as a split point.
_BETWEEN_ROWS: Final = b'},{"' + FEATURE_COLUMNS[0].encode() + b'":'
_SPLIT_ROWS: Final = b'}\n{"' + FEATURE_COLUMNS[0].encode() + b'":'


def encode_rows(columns: Sequence[Sequence[Any]]) -> list[bytes]:
    """Encode output columns (in `FEATURE_COLUMNS` order) as one JSON object per row.

    Non-finite floats (only an overflowed sum can be one) are written as null, which
    keeps every row valid JSON.
    """
    if len(columns) != len(FEATURE_COLUMNS):
        raise ValueError(f"expected {len(FEATURE_COLUMNS)} columns, got {len(columns)}")
    rows = list(map(_Row, *columns))
    if not rows:
        return []
    # One encoder call for the whole batch, then a split, is ~3x cheaper than one call
    # per row: the fixed cost per call is larger than the work for a small row.
    encoded = _encode(rows)[1:-1]
    return encoded.replace(_BETWEEN_ROWS, _SPLIT_ROWS).split(b"\n")
