"""Fuzzing `records.unpack`: a worker unpacks whatever RecordBatch arrives on its stream.

The contract (runner.proto, RecordBatch): record i takes value_sizes[i] bytes of
`values`, key_sizes[i] bytes of `keys` (-1: no key, no bytes), a header names a record
by index, and `tenants` is empty or one per record. Any batch either unpacks to exactly
what that contract says, which packs back to itself, or is refused with ValueError (the
error `unpack` documents; the worker rejects the task with it). Never an IndexError, a
struct or overflow error, nor records silently cut short or made up.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from streamplane.platform.records import NO_KEY, Records, pack, unpack
from streamplane.runner.v1 import runner_pb2

FUZZ = settings.get_profile("fuzz")

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
UINT32_MAX = 2**32 - 1
SINT32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)


@dataclass(frozen=True)
class Fields:
    """The raw columns of a RecordBatch, as the test drew them."""

    topic: str
    partition: int
    offsets: list[int]
    timestamps_ms: list[int]
    values: bytes
    value_sizes: list[int]
    keys: bytes
    key_sizes: list[int]
    headers: list[tuple[int, str, bytes]]
    tenants: list[str]

    def message(self) -> runner_pb2.RecordBatch:
        batch = runner_pb2.RecordBatch(
            topic=self.topic,
            partition=self.partition,
            offsets=self.offsets,
            timestamps_ms=self.timestamps_ms,
            values=self.values,
            value_sizes=self.value_sizes,
            keys=self.keys,
            key_sizes=self.key_sizes,
            tenants=self.tenants,
        )
        for index, key, value in self.headers:
            batch.headers.add(index=index, key=key, value=value)
        return batch


def expected(fields: Fields) -> Records | None:
    """What the contract says the batch holds, or None when it holds nothing coherent.

    Written from runner.proto, independently of `unpack`.
    """
    n = len(fields.offsets)
    if len(fields.timestamps_ms) != n or len(fields.value_sizes) != n:
        return None
    if len(fields.key_sizes) != n:
        return None
    if sum(fields.value_sizes) != len(fields.values):
        return None
    if any(size < NO_KEY for size in fields.key_sizes):
        return None
    if sum(size for size in fields.key_sizes if size > 0) != len(fields.keys):
        return None
    if any(index >= n for index, _, _ in fields.headers):
        return None
    if fields.tenants and len(fields.tenants) != n:
        return None
    values: list[bytes] = []
    at = 0
    for size in fields.value_sizes:
        values.append(fields.values[at : at + size])
        at += size
    keys: list[bytes | None] = []
    at = 0
    for size in fields.key_sizes:
        if size == NO_KEY:
            keys.append(None)
        else:
            keys.append(fields.keys[at : at + size])
            at += size
    headers: dict[int, list[tuple[str, bytes]]] = {}
    for index, key, value in fields.headers:
        headers.setdefault(index, []).append((key, value))
    return Records(
        fields.topic,
        fields.partition,
        list(fields.offsets),
        list(fields.timestamps_ms),
        keys,
        values,
        headers,
        list(fields.tenants),
    )


def assert_packs_back(records: Records) -> None:
    """Packing what was unpacked, and unpacking that again, changes nothing."""
    batch = runner_pb2.RecordBatch()
    pack(records, batch)
    again = unpack(runner_pb2.RecordBatch.FromString(batch.SerializeToString()))
    assert again.topic == records.topic
    assert again.partition == records.partition
    assert again.offsets == records.offsets
    assert again.timestamps_ms == records.timestamps_ms
    assert again.keys == records.keys
    assert again.values == records.values
    assert again.headers == records.headers
    mixed = len(set(records.tenants)) > 1
    assert again.tenants == (records.tenants if mixed else [])


def check(batch: runner_pb2.RecordBatch, want: Records | None) -> None:
    """`unpack` gives `want`, or refuses with ValueError when `want` is None."""
    # Only ValueError may escape: anything else (IndexError, OverflowError, ...) fails.
    try:
        got = unpack(batch)
    except ValueError:
        assert want is None, "a coherent batch was refused"
        return
    assert want is not None, f"an incoherent batch was accepted: {got}"
    assert got == want
    assert len(got.keys) == len(got.values) == len(got.timestamps_ms) == len(got) == len(want)
    assert_packs_back(got)


# -- coherent batches, then broken one column at a time -------------------------------

_record = st.tuples(
    INT64,
    INT64,
    st.none() | st.binary(max_size=12),
    st.binary(max_size=24),
    st.lists(st.tuples(st.text(max_size=4), st.binary(max_size=4)), max_size=2),
    st.sampled_from(["a", "b", "tenant-c"]),
)


@st.composite
def coherent(draw: st.DrawFn) -> Fields:
    rows = draw(st.lists(_record, max_size=12))
    headers = [(i, k, v) for i, row in enumerate(rows) for k, v in row[4]]
    with_tenants = draw(st.booleans())
    return Fields(
        topic=draw(st.text(max_size=8)),
        partition=draw(SINT32),
        offsets=[r[0] for r in rows],
        timestamps_ms=[r[1] for r in rows],
        values=b"".join(r[3] for r in rows),
        value_sizes=[len(r[3]) for r in rows],
        keys=b"".join(r[2] for r in rows if r[2]),
        key_sizes=[NO_KEY if r[2] is None else len(r[2]) for r in rows],
        headers=draw(st.permutations(headers)),
        tenants=[r[5] for r in rows] if with_tenants else [],
    )


def _bump(sizes: list[int], draw: st.DrawFn, low: int, high: int) -> list[int]:
    if not sizes:
        return [draw(st.integers(low, high))]
    i = draw(st.integers(0, len(sizes) - 1))
    return [*sizes[:i], draw(st.integers(low, high)), *sizes[i + 1 :]]


def _drop_key(blob: bytes, sizes: list[int], index: int) -> bytes:
    """`blob` without the bytes of key `index` (sizes as in key_sizes)."""
    start = sum(max(size, 0) for size in sizes[:index])
    size = max(sizes[index], 0) if index < len(sizes) else 0
    return blob[:start] + blob[start + size :]


@st.composite
def broken(draw: st.DrawFn) -> Fields:
    """A coherent batch with one kind of damage a buggy or hostile supervisor could send."""
    f = draw(coherent())
    n = len(f.offsets)
    damage = draw(
        st.sampled_from(
            [
                "value_size",
                "value_size_huge",
                "values_cut",
                "values_extra",
                "key_size",
                "key_size_negative",
                "keys_cut",
                "keys_extra",
                "header_index",
                "tenants_length",
                "column_length",
            ]
        )
    )
    fields = dict(f.__dict__)
    if damage == "value_size":
        fields["value_sizes"] = _bump(f.value_sizes, draw, 0, 64)
    elif damage == "value_size_huge":
        fields["value_sizes"] = _bump(f.value_sizes, draw, 2**20, UINT32_MAX)
    elif damage == "values_cut":
        fields["values"] = f.values[: draw(st.integers(0, len(f.values)))]
    elif damage == "values_extra":
        fields["values"] = f.values + draw(st.binary(min_size=1, max_size=8))
    elif damage == "key_size":
        fields["key_sizes"] = _bump(f.key_sizes, draw, -1, 64)
    elif damage == "key_size_negative":
        # -1 is "no key"; any other negative size means nothing in the contract. The
        # record's key bytes go too, so that every other column still adds up.
        fields["key_sizes"] = sizes = _bump(f.key_sizes, draw, -(2**31), -2)
        fields["keys"] = _drop_key(f.keys, f.key_sizes, sizes.index(min(sizes)))
    elif damage == "keys_cut":
        fields["keys"] = f.keys[: draw(st.integers(0, len(f.keys)))]
    elif damage == "keys_extra":
        fields["keys"] = f.keys + draw(st.binary(min_size=1, max_size=8))
    elif damage == "header_index":
        index = draw(st.integers(n, n + 3) | st.just(UINT32_MAX))
        fields["headers"] = [*f.headers, (index, "h", b"v")]
    elif damage == "tenants_length":
        fields["tenants"] = draw(
            st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=n + 3).filter(
                lambda t: len(t) != n
            )
        )
    else:
        column = draw(st.sampled_from(["offsets", "timestamps_ms", "value_sizes", "key_sizes"]))
        values: list[int] = fields[column]
        shorter = bool(values) and draw(st.booleans())
        fields[column] = values[:-1] if shorter else [*values, 0]
    return Fields(**fields)


@FUZZ
@given(coherent())
def test_a_coherent_batch_unpacks_to_what_the_contract_says(fields: Fields) -> None:
    want = expected(fields)
    assert want is not None
    wire = runner_pb2.RecordBatch.FromString(fields.message().SerializeToString())
    check(wire, want)


@FUZZ
@given(broken())
def test_a_damaged_batch_is_refused_with_value_error_or_means_what_it_says(
    fields: Fields,
) -> None:
    # Some damage cancels out (a size bumped to its own value): then it must unpack.
    check(fields.message(), expected(fields))


@FUZZ
@given(
    st.builds(
        Fields,
        topic=st.text(max_size=4),
        partition=SINT32,
        offsets=st.lists(INT64, max_size=5),
        timestamps_ms=st.lists(INT64, max_size=5),
        values=st.binary(max_size=16),
        value_sizes=st.lists(st.integers(0, 8) | st.integers(0, UINT32_MAX), max_size=5),
        keys=st.binary(max_size=16),
        key_sizes=st.lists(st.integers(-3, 8) | SINT32, max_size=5),
        headers=st.lists(
            st.tuples(
                st.integers(0, 6) | st.integers(0, UINT32_MAX),
                st.text(max_size=3),
                st.binary(max_size=3),
            ),
            max_size=4,
        ),
        tenants=st.lists(st.text(max_size=3), max_size=6),
    )
)
def test_any_columns_unpack_correctly_or_raise_value_error(fields: Fields) -> None:
    check(fields.message(), expected(fields))


def parse_and_check(data: bytes) -> None:
    """Parse `data` as a RecordBatch and check what `unpack` makes of it.

    Parsing is protobuf's: bytes that are no RecordBatch raise its DecodeError, which the
    worker's gRPC stream and the mesh inbox turn away. What parses goes to `unpack`.
    """
    try:
        batch = runner_pb2.RecordBatch.FromString(data)
    except DecodeError:
        return
    fields = Fields(
        batch.topic,
        batch.partition,
        list(batch.offsets),
        list(batch.timestamps_ms),
        batch.values,
        list(batch.value_sizes),
        batch.keys,
        list(batch.key_sizes),
        [(hd.index, hd.key, hd.value) for hd in batch.headers],
        list(batch.tenants),
    )
    check(batch, expected(fields))


@FUZZ
@given(st.binary(max_size=256))
def test_any_bytes_parse_and_unpack_correctly_or_fail_cleanly(data: bytes) -> None:
    parse_and_check(data)


@FUZZ
@given(coherent(), st.binary(min_size=1, max_size=64), st.integers(0, 2**16))
def test_a_mutated_wire_batch_unpacks_correctly_or_fails_cleanly(
    fields: Fields, noise: bytes, at: int
) -> None:
    wire = fields.message().SerializeToString()
    at = at % (len(wire) + 1)
    parse_and_check(wire[:at] + noise + wire[at + len(noise) :])


@pytest.mark.parametrize("size", [-2, -7, -(2**31)])
def test_a_negative_key_size_other_than_minus_one_is_refused(size: int) -> None:
    batch = runner_pb2.RecordBatch(
        offsets=[1], timestamps_ms=[0], value_sizes=[1], values=b"v", key_sizes=[size]
    )
    with pytest.raises(ValueError, match="key size"):
        unpack(batch)
