"""The publish retry schedule: 100 ms doubling, capped at 3 s, a bounded number of attempts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamplane.platform.rpc import Backoff


def test_default_schedule_doubles_from_100_ms() -> None:
    backoff = Backoff()
    assert backoff.attempts == 6
    assert backoff.schedule() == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6])


def test_schedule_is_capped_at_3_s() -> None:
    backoff = Backoff(attempts=9)
    assert backoff.schedule() == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.0, 3.0, 3.0])
    assert backoff.delay(50) == 3.0


def test_one_attempt_means_no_retry() -> None:
    assert Backoff(attempts=1).schedule() == []


@pytest.mark.parametrize(
    "bad", [{"attempts": 0}, {"first_s": -0.1}, {"factor": 0.5}, {"cap_s": -1.0}]
)
def test_nonsense_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="invalid backoff"):
        Backoff(**bad)  # type: ignore[arg-type]


@settings(max_examples=200, derandomize=True, database=None)
@given(
    first=st.floats(0.001, 1.0),
    cap=st.floats(0.001, 10.0),
    attempts=st.integers(1, 30),
)
def test_schedule_grows_by_doubling_until_the_cap(first: float, cap: float, attempts: int) -> None:
    schedule = Backoff(first_s=first, cap_s=cap, attempts=attempts).schedule()
    assert len(schedule) == attempts - 1
    for i, delay in enumerate(schedule):
        assert delay == pytest.approx(min(cap, first * 2**i))
        assert delay <= cap
    assert schedule == sorted(schedule)
