import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamplane.platform.records import Records, pack, unpack
from streamplane.runner.v1 import runner_pb2

record = st.tuples(
    st.integers(min_value=0, max_value=2**62),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.none() | st.binary(max_size=20),
    st.binary(max_size=50),
    st.lists(st.tuples(st.text(max_size=5), st.binary(max_size=5)), max_size=2),
    st.sampled_from(["a", "b"]),
)


@given(st.lists(record, max_size=30), st.booleans())
def test_pack_then_unpack_is_identity(rows: list[tuple], with_tenants: bool) -> None:
    records = Records("topic", 3)
    for i, (offset, ts, key, value, headers, tenant) in enumerate(rows):
        records.offsets.append(offset)
        records.timestamps_ms.append(ts)
        records.keys.append(key)
        records.values.append(value)
        if headers:
            records.headers[i] = headers
        if with_tenants:
            records.tenants.append(tenant)
    batch = runner_pb2.RecordBatch()
    pack(records, batch)
    wire = runner_pb2.RecordBatch.FromString(batch.SerializeToString())
    got = unpack(wire)
    assert got.offsets == records.offsets
    assert got.timestamps_ms == records.timestamps_ms
    assert got.keys == records.keys  # None and b"" stay distinct
    assert got.values == records.values
    assert got.headers == records.headers
    mixed = with_tenants and len(set(records.tenants)) > 1
    assert got.tenants == (records.tenants if mixed else [])


def test_slice_keeps_columns_aligned() -> None:
    records = Records(
        "t",
        0,
        [5, 6, 7],
        [1, 2, 3],
        [b"a", None, b"c"],
        [b"x", b"y", b"z"],
        {1: [("h", b"v")]},
        ["p", "q", "p"],
    )
    part = records.slice(1, 3)
    assert (part.offsets, part.keys, part.values) == ([6, 7], [None, b"c"], [b"y", b"z"])
    assert part.headers == {0: [("h", b"v")]}
    assert part.tenants == ["q", "p"]


def test_inconsistent_batch_is_refused() -> None:
    batch = runner_pb2.RecordBatch(
        offsets=[1, 2], timestamps_ms=[0, 0], value_sizes=[1, 1], key_sizes=[-1, -1], values=b"abc"
    )
    with pytest.raises(ValueError, match="sizes"):
        unpack(batch)
