"""Bounded waiting for tests: poll a condition until it holds or a deadline passes.

Tests never sleep for a fixed time; they wait for the state they need, with a deadline
that turns a hang into a failure naming what never happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.1,
    message: str | Callable[[], str] = "condition not met",
) -> T:
    """Call ``predicate`` until it returns something truthy, and return that.

    The predicate is called at least once, even with ``timeout`` 0. ``message`` may be
    a callable so it can describe the state at the moment of failure.

    Raises:
        AssertionError: ``timeout`` seconds passed and the predicate never held.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            text = message() if callable(message) else message
            raise AssertionError(f"{text} (waited {timeout:g} s)")
        time.sleep(min(interval, remaining))
