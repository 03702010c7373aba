"""Hypothesis strategies for demo events, valid and invalid."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from .events import encode, without

REQUIRED = ("event_id", "tenant", "user_id", "event_type", "value", "ts")
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)

values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
)
# A few shared user ids, so the per-user window features see groups larger than one.
user_ids = st.one_of(
    st.sampled_from(["alice", "bob", "carol"]),
    st.text(max_size=8),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
)


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "event_id": draw(st.text(max_size=12)),
        "tenant": draw(st.sampled_from(["acme", "globex", "ünïcode"])),
        "user_id": draw(user_ids),
        "event_type": draw(st.sampled_from(["view", "click", "purchase", "signup", ""])),
        "value": draw(values),
        "ts": draw(INT64),
    }
    skill = draw(st.sampled_from(["absent", "null", "text"]))
    if skill != "absent":
        obj["skill"] = None if skill == "null" else draw(st.text(max_size=8))
    if draw(st.booleans()):
        obj["extra"] = draw(st.one_of(st.none(), st.integers(), st.text(max_size=4)))
    # Field order in the input must not matter.
    items = list(obj.items())
    return dict(draw(st.permutations(items)))


@st.composite
def schema_errors(draw: st.DrawFn) -> bytes:
    obj = draw(valid_events())
    field = draw(st.sampled_from(REQUIRED))
    wrong: st.SearchStrategy[object] = {
        "value": st.sampled_from(["1.5", True, False, None, [1]]),
        "ts": st.one_of(
            st.floats(allow_nan=False, allow_infinity=False), st.just("1"), st.just(True)
        ),
        # an integer user id is coerced to its string, so only non-integers are wrong
        "user_id": st.one_of(st.none(), st.floats(allow_nan=False), st.booleans()),
    }.get(field, st.one_of(st.none(), st.integers(), st.booleans()))
    if draw(st.booleans()):
        return encode(without(obj, field))[0]
    return encode({**obj, field: draw(wrong)})[0]


parse_errors = st.one_of(
    st.binary(max_size=20).map(lambda raw: b"\x00" + raw),  # NUL is never valid JSON
    valid_events().map(lambda obj: encode(obj)[0][:-1]),  # an unclosed object
    st.sampled_from([b"[]", b"1", b'"event"', b"null", b"true"]),  # JSON, not an object
)

# (expected error kind or None for a valid record, the record value)
records = st.one_of(
    valid_events().map(lambda obj: (None, encode(obj)[0])),
    schema_errors().map(lambda raw: ("schema", raw)),
    parse_errors.map(lambda raw: ("parse", raw)),
)
