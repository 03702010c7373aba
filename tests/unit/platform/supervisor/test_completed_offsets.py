"""Completed offsets above a commit, in the commit's metadata: exact when they fit, a
safe subset (lowest runs first) when they do not, nothing for text that is not ours."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from streamplane.platform.supervisor import completed_offsets as co
from streamplane.platform.supervisor.offsets import OffsetTracker
from tests.unit.platform.supervisor.factories import FAST


def covered(runs: list[co.Run]) -> set[int]:
    return {o for start, end in runs for o in range(start, end)}


@FAST
@given(
    committed=st.integers(0, 10**12),
    gaps=st.lists(st.tuples(st.integers(1, 5000), st.integers(1, 5000)), max_size=40),
)
def test_runs_that_fit_come_back_exactly(committed: int, gaps: list[tuple[int, int]]) -> None:
    done: set[int] = set()
    at = committed
    for gap, length in gaps:
        done.update(range(at + gap, at + gap + length))
        at += gap + length
    text = co.encode(committed, done)
    assert len(text) <= co.MAX_METADATA_CHARS
    assert covered(co.decode(committed, text)) == done


@FAST
@given(seed=st.integers(0, 2**32), limit=st.integers(40, 600))
def test_past_the_limit_only_the_lowest_runs_are_listed(seed: int, limit: int) -> None:
    rng = random.Random(seed)
    committed = rng.randrange(10**6)
    done = {committed + 1 + rng.randrange(200_000) for _ in range(20_000)}
    text = co.encode(committed, done, limit=limit)
    assert len(text) <= limit
    listed = covered(co.decode(committed, text))
    assert listed <= done
    if listed:
        # A prefix: nothing completed below the highest listed offset is left out.
        assert {o for o in done if o <= max(listed)} == listed


def test_offsets_at_or_below_the_commit_are_never_listed() -> None:
    text = co.encode(100, {98, 99, 100, 101, 102, 200})
    assert covered(co.decode(100, text)) == {101, 102, 200}
    assert co.encode(100, {5, 100}) == ""


def test_text_that_is_not_ours_or_for_another_offset_yields_nothing() -> None:
    text = co.encode(100, {150, 151})
    assert co.decode(101, text) == []
    for junk in ["", "hello", "sp1:100:", "sp1:100:!!!!", "sp1:x:abc", "sp2:100:eJwDAAAAAAE"]:
        assert co.decode(100, junk) == [], junk
    # Well-formed, but with a run that starts at the commit (which is outstanding).
    touching = co._encode_runs(100, [(100, 105)])
    assert co.decode(100, touching) == []


def test_skips_answer_membership_in_ascending_order() -> None:
    skips = co.Skips([(5, 8), (10, 11)])
    assert [o for o in range(0, 15) if o in skips] == [5, 6, 7, 10]
    assert skips.last == 11
    assert skips.count == 4


def test_a_tracker_lists_what_completed_above_its_lowest_outstanding_record() -> None:
    tracker = OffsetTracker()
    tracker.register(range(0, 10))
    assert tracker.commit_metadata() == ""
    tracker.complete([3, 4, 7])
    assert tracker.committable() == 0
    assert covered(co.decode(0, tracker.commit_metadata())) == {3, 4, 7}
    tracker.complete([0, 1, 2])
    assert tracker.committable() == 5
    assert covered(co.decode(5, tracker.commit_metadata())) == {7}
