"""The lag sensor's pure logic: desired workers, stuck partitions, the cursor."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streamplane.sensors.scaling import (
    NEVER_COMMITTED,
    LagCursor,
    ScalingPolicy,
    decide,
    desired_workers,
)

POLICY = ScalingPolicy(
    min_workers=0, max_workers=4, lag_per_worker=1000, activation_lag=0, stuck_after_ticks=2
)


def test_desired_is_ceil_of_lag_per_worker_clamped() -> None:
    assert desired_workers(0, POLICY) == 0
    assert desired_workers(1, POLICY) == 1
    assert desired_workers(1000, POLICY) == 1
    assert desired_workers(1001, POLICY) == 2
    assert desired_workers(10**9, POLICY) == 4


def test_activation_lag_keeps_min_workers() -> None:
    policy = ScalingPolicy(1, 4, 1000, activation_lag=500, stuck_after_ticks=2)
    assert desired_workers(500, policy) == 1
    assert desired_workers(501, policy) == 1
    assert desired_workers(2500, policy) == 3


@given(
    lag=st.integers(0, 10**9),
    low=st.integers(0, 10),
    high=st.integers(0, 10),
    per=st.integers(1, 10**6),
    activation=st.integers(0, 10**6),
)
def test_desired_stays_within_bounds(
    lag: int, low: int, high: int, per: int, activation: int
) -> None:
    policy = ScalingPolicy(low, high, per, activation, 3)
    desired = desired_workers(lag, policy)
    assert desired <= high
    assert desired >= min(low, high)


@given(active=st.integers(0, 20), lag=st.integers(0, 10**7))
def test_never_launches_beyond_the_desired_count(active: int, lag: int) -> None:
    decision = decide(LagCursor(), {}, {0: lag}, active, POLICY)
    assert decision.launch == max(decision.desired - active, 0)
    assert active + decision.launch <= max(decision.desired, active)


def test_first_tick_has_no_stall_evidence() -> None:
    decision = decide(LagCursor(), {0: 10, 1: 10}, {0: 5000, 1: 0}, 0, POLICY)
    assert decision.stuck == {}
    assert decision.desired == 4
    assert decision.cursor.committed == {0: 10, 1: 10}


def test_partition_standing_still_while_others_advance_becomes_stuck() -> None:
    cursor = LagCursor(committed={0: 100, 1: 100, 2: 100}, epoch="e")
    lag = {0: 9000, 1: 50, 2: 50}
    # Tick 1: partitions 1 and 2 advance, 0 stands still -> one still tick.
    first = decide(cursor, {0: 100, 1: 150, 2: 180}, lag, 0, POLICY)
    assert first.cursor.still_ticks == {0: 1}
    assert first.stuck == {}
    # Tick 2: again -> stuck (stuck_after_ticks=2), its lag is left out of scaling.
    second = decide(first.cursor, {0: 100, 1: 200, 2: 230}, lag, 0, POLICY)
    assert second.stuck == {0: 9000}
    assert second.effective_lag == 100
    assert second.desired == 1


def test_no_progress_anywhere_is_no_evidence() -> None:
    cursor = LagCursor(committed={0: 100, 1: 100}, still_ticks={0: 1}, epoch="e")
    decision = decide(cursor, {0: 100, 1: 100}, {0: 9000, 1: 9000}, 0, POLICY)
    assert decision.cursor.still_ticks == {0: 1}
    assert decision.stuck == {}
    assert decision.desired == 4  # a plain backlog: no workers yet, nothing moves


def test_stuck_partition_recovers_when_it_moves() -> None:
    cursor = LagCursor(committed={0: 100, 1: 100}, still_ticks={0: 5}, epoch="e")
    decision = decide(cursor, {0: 101, 1: 200}, {0: 9000, 1: 0}, 0, POLICY)
    assert decision.stuck == {}
    assert decision.cursor.still_ticks == {}


def test_never_committed_partition_that_stays_uncommitted_is_standing() -> None:
    cursor = LagCursor(committed={0: NEVER_COMMITTED, 1: 5}, still_ticks={0: 1}, epoch="e")
    decision = decide(cursor, {1: 50}, {0: 700, 1: 10}, 0, POLICY)
    assert decision.stuck == {0: 700}


def test_cursor_round_trips_and_tolerates_garbage() -> None:
    cursor = LagCursor(committed={0: 5, 3: -1}, still_ticks={3: 2}, launches=7, epoch="abc")
    assert LagCursor.from_json(cursor.to_json()) == cursor
    fresh = LagCursor.from_json("not json")
    assert fresh.committed == {}
    assert fresh.launches == 0
    assert LagCursor.from_json(None).epoch != LagCursor.from_json(None).epoch


def test_run_keys_count_on_and_carry_the_epoch() -> None:
    cursor = LagCursor(epoch="abc")
    decision = decide(cursor, {}, {0: 2500}, 0, POLICY)
    assert decision.launch == 3
    assert decision.cursor.launches == 3
    assert decision.cursor.epoch == "abc"
    assert cursor.run_key(1) == "worker-abc-1"
