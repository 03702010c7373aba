"""The ledger: one owner of offsets, and of whether a task is still current."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streamplane.platform.supervisor.ledger import Ledger
from tests.unit.platform.supervisor.factories import make_task

TP = ("in", 0)


def test_complete_moves_the_committable_offset() -> None:
    ledger = Ledger()
    tracker = ledger.assign(TP)
    ledger.register(TP, [0, 1, 2, 3])
    second = make_task(TP, [2, 3], tracker)
    first = make_task(TP, [0, 1], tracker)
    assert ledger.complete(second)
    assert ledger.committable() == {TP: 0}
    assert ledger.pending_records == 2
    assert ledger.complete(first)
    assert ledger.committable() == {TP: 4}
    assert ledger.pending_records == 0


def test_a_task_of_a_revoked_assignment_moves_nothing() -> None:
    ledger = Ledger()
    old = ledger.assign(TP)
    ledger.register(TP, [0, 1])
    stale = make_task(TP, [0, 1], old)
    assert ledger.revoke([TP]) == {TP: (0, "")}
    assert not ledger.is_current(stale)
    fresh = ledger.assign(TP)  # assigned again: a new generation
    ledger.register(TP, [0, 1])
    assert not ledger.complete(stale)
    assert ledger.committable() == {TP: 0}
    assert ledger.complete(make_task(TP, [0, 1], fresh))
    assert ledger.committable() == {TP: 2}


def test_a_task_marked_revoked_is_not_current() -> None:
    ledger = Ledger()
    tracker = ledger.assign(TP)
    ledger.register(TP, [0])
    task = make_task(TP, [0], tracker)
    task.revoked = True
    assert not ledger.complete(task)
    assert ledger.tracker(TP) is tracker
    assert ledger.tracker(("in", 9)) is None


@given(st.permutations(list(range(12))), st.integers(min_value=1, max_value=4))
def test_committable_is_the_lowest_outstanding(order: list[int], size: int) -> None:
    ledger = Ledger()
    tracker = ledger.assign(TP)
    offsets = list(range(12))
    ledger.register(TP, offsets)
    chunks = [offsets[i : i + size] for i in range(0, 12, size)]
    done: set[int] = set()
    for index in order[: len(chunks)]:
        chunk = chunks[index % len(chunks)]
        ledger.complete(make_task(TP, chunk, tracker))
        done.update(chunk)
        lowest = min((o for o in offsets if o not in done), default=12)
        assert ledger.committable() == {TP: lowest}
