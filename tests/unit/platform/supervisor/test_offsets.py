import random

from hypothesis import given
from hypothesis import strategies as st

from streamplane.platform.supervisor.offsets import OffsetTracker


def test_empty_tracker_has_nothing_to_commit() -> None:
    assert OffsetTracker().committable() is None
    assert OffsetTracker(start=42).committable() == 42


def test_committable_is_lowest_outstanding() -> None:
    t = OffsetTracker()
    t.register([10, 11, 12, 14])
    t.complete([11, 12])
    assert t.committable() == 10
    t.complete([10])
    assert t.committable() == 14
    t.complete([14])
    assert t.committable() == 15
    assert t.outstanding == 0


def test_out_of_order_registration_is_refused() -> None:
    t = OffsetTracker()
    t.register([5, 6])
    try:
        t.register([4])
    except ValueError:
        return
    raise AssertionError("registering a lower offset must fail")


@given(
    st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=60),
    st.integers(min_value=0, max_value=2**32),
)
def test_committable_never_passes_an_unacknowledged_record(gaps: list[int], seed: int) -> None:
    rnd = random.Random(seed)
    offsets, offset = [], 100
    for gap in gaps:
        offset += gap  # Kafka offsets may have gaps (compaction, transaction markers)
        offsets.append(offset)
    t = OffsetTracker()
    t.register(offsets)
    pending = set(offsets)
    order = offsets[:]
    rnd.shuffle(order)
    # acks arrive in any order, in batches of any size, possibly repeated (duplicates)
    while order:
        n = rnd.randint(1, 5)
        batch, order = order[:n], order[n:]
        if rnd.random() < 0.2 and batch:
            order.append(batch[0])  # redelivered and acked again later
        t.complete(batch)
        pending -= set(batch)
        c = t.committable()
        assert c is not None
        assert all(c <= p for p in pending), (c, sorted(pending))
        if not pending:
            assert c == offsets[-1] + 1
