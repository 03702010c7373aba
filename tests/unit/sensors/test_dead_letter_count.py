"""The dead-letter count follows offsets: nothing lost, nothing twice, sums that agree."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from streamplane.platform.dead_letter_reader import DeadLetter
from streamplane.sensors.dead_letter_count import MAX_NAMES, OTHER, LetterCount


def letter(partition: int, offset: int, tenant: str = "t1", kind: str = "parse") -> DeadLetter:
    # Timestamps play no part in the count: give every letter an hour-old one.
    return DeadLetter("in.dlq", partition, offset, 0, "in/0@0", tenant, kind, "", "1", b"x")


def test_a_first_read_starts_at_the_low_watermark() -> None:
    count = LetterCount()
    assert count.start_offsets({0: (0, 5), 1: (3, 3)}) == {0: 0, 1: 3}
    assert count.positions == {0: 0, 1: 3}


def test_a_read_goes_on_from_the_positions() -> None:
    count = LetterCount(positions={0: 4, 1: 1})
    assert count.start_offsets({0: (0, 9), 1: (0, 1)}) == {0: 4, 1: 1}


def test_letters_deleted_before_they_were_read_are_skipped_not_counted() -> None:
    count = LetterCount(positions={0: 2})
    assert count.start_offsets({0: (10, 12)}) == {0: 10}
    assert count.skipped == 8
    assert count.total == 0


def test_a_recreated_topic_is_read_from_its_start_and_the_count_goes_on() -> None:
    count = LetterCount(positions={0: 50, 1: 7}, by_kind={"parse": 57}, by_tenant={"t": 57})
    assert count.start_offsets({0: (0, 3)}) == {0: 0}
    assert count.positions == {0: 0}, "a partition the topic lost is dropped"
    count.add(letter(0, 0))
    assert count.total == 58


def test_add_counts_by_tenant_and_kind_and_moves_the_position() -> None:
    count = LetterCount()
    count.start_offsets({0: (0, 3)})
    count.add(letter(0, 0, "a", "parse"))
    count.add(letter(0, 1, "b", "schema"))
    assert count.positions == {0: 2}
    assert count.by_tenant == {"a": 1, "b": 1}
    assert count.by_kind == {"parse": 1, "schema": 1}
    assert count.total == 2
    assert count.unread({0: 3}) == 1


def test_an_end_of_partition_passes_offsets_without_letters() -> None:
    count = LetterCount(positions={0: 2})
    count.reached(0, 5)  # a transaction's commit marker, say
    count.reached(0, 4)  # an older report never moves a position back
    assert count.positions == {0: 5}
    assert count.unread({0: 5}) == 0


def test_names_are_bounded_and_the_rest_add_up_as_other() -> None:
    count = LetterCount()
    for i in range(MAX_NAMES + 5):
        count.add(letter(0, i, tenant=f"t{i}"))
    assert len(count.by_tenant) == MAX_NAMES + 1
    assert count.by_tenant[OTHER] == 5
    assert sum(count.by_tenant.values()) == count.total == MAX_NAMES + 5


def test_the_cursor_form_round_trips_through_json() -> None:
    count = LetterCount(positions={0: 3, 2: 9}, skipped=1, by_tenant={"t": 4}, by_kind={"k": 4})
    again = LetterCount.from_dict(json.loads(json.dumps(count.to_dict())))
    assert again == count
    assert LetterCount.from_dict(LetterCount().to_dict()) == LetterCount()


def test_an_absent_or_broken_cursor_starts_a_new_count() -> None:
    assert LetterCount.from_dict(None) == LetterCount()
    assert LetterCount.from_dict({"positions": {"x": 1}}) == LetterCount()


def test_a_copy_is_independent() -> None:
    count = LetterCount(positions={0: 1}, by_kind={"k": 1}, by_tenant={"t": 1})
    copy = count.copy()
    copy.add(letter(0, 1))
    assert count == LetterCount(positions={0: 1}, by_kind={"k": 1}, by_tenant={"t": 1})


@given(
    tenants=st.lists(st.sampled_from(["a", "b", "c"]), min_size=0, max_size=60),
    partitions=st.integers(1, 4),
    cuts=st.lists(st.integers(0, 60), max_size=6),
    through=st.data(),
)
def test_reads_cut_anywhere_count_every_letter_once(
    tenants: list[str], partitions: int, cuts: list[int], through: st.DataObject
) -> None:
    """Letters written between reads, reads stopping short anywhere: once each, in the end."""
    topic: dict[int, list[DeadLetter]] = {p: [] for p in range(partitions)}
    kinds = ["parse", "schema", "attempts"]
    written = 0
    count = LetterCount()
    for i, tenant in enumerate(tenants):
        p = i % partitions
        topic[p].append(letter(p, len(topic[p]), tenant, kinds[i % 3]))
        written += 1
        if i in cuts:  # a read now, each partition stopping after some of its letters
            starts = count.start_offsets({q: (0, len(ls)) for q, ls in topic.items()})
            for q, ls in topic.items():
                stop = through.draw(st.integers(starts[q], len(ls)))
                for one in ls[starts[q] : stop]:
                    count.add(one)
            assert count.total <= written
    starts = count.start_offsets({q: (0, len(ls)) for q, ls in topic.items()})
    for q, ls in topic.items():
        for one in ls[starts[q] :]:
            count.add(one)
    assert count.total == written == sum(count.by_tenant.values()) == sum(count.by_kind.values())
    for name in ("a", "b", "c"):
        assert count.by_tenant.get(name, 0) == tenants.count(name)
    assert count.unread({q: len(ls) for q, ls in topic.items()}) == 0
