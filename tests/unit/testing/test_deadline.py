import pytest

from tests.support.deadline import wait_until


def test_returns_the_first_truthy_value() -> None:
    answers = iter([None, 0, "ready", "later"])

    assert wait_until(lambda: next(answers), timeout=5, interval=0) == "ready"


def test_calls_the_predicate_once_even_without_time() -> None:
    calls: list[int] = []

    def predicate() -> bool:
        calls.append(1)
        return True

    assert wait_until(predicate, timeout=0) is True
    assert len(calls) == 1


def test_timeout_raises_with_the_message() -> None:
    with pytest.raises(AssertionError, match=r"never true \(waited 0.05 s\)"):
        wait_until(lambda: False, timeout=0.05, interval=0.01, message="never true")


def test_message_may_describe_the_state_at_failure() -> None:
    state = {"seen": 0}

    def predicate() -> bool:
        state["seen"] += 1
        return False

    with pytest.raises(AssertionError, match=r"seen \d+ times"):
        wait_until(
            predicate, timeout=0.05, interval=0.01, message=lambda: f"seen {state['seen']} times"
        )
