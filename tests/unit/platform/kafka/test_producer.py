"""DeliveryGroup: fires once, after the last report, with the first error."""

from __future__ import annotations

import gc
import weakref

from hypothesis import given
from hypothesis import strategies as st

from streamplane.platform.kafka.errors import MSG_SIZE_TOO_LARGE
from streamplane.platform.kafka.exceptions import ProduceFailed, QueueFull
from streamplane.platform.kafka.producer import DeliveryGroup


class _Err:
    def __init__(self, code: int, text: str) -> None:
        self._code, self._text = code, text

    def code(self) -> int:
        return self._code

    def __str__(self) -> str:
        return self._text


def _group() -> tuple[DeliveryGroup, list[str | None]]:
    fired: list[str | None] = []
    return DeliveryGroup(fired.append), fired


def test_fires_after_seal_and_last_report() -> None:
    group, fired = _group()
    group.written = 3
    group.report(None, None)
    group.report(None, None)
    group.seal()
    assert fired == []
    group.report(None, None)
    assert fired == [None]


def test_empty_group_fires_at_seal() -> None:
    group, fired = _group()
    group.seal()
    assert fired == [None]


def test_first_error_wins_and_size_is_noticed() -> None:
    group, fired = _group()
    group.written = 2
    group.seal()
    group.report(_Err(MSG_SIZE_TOO_LARGE, "too big"), None)
    group.report(_Err(1, "later"), None)
    assert fired == ["too big"]
    assert group.too_large


def test_a_record_never_queued_counts_as_failed() -> None:
    group, fired = _group()
    group.written = 1
    group.failed(ProduceFailed("refused", code=MSG_SIZE_TOO_LARGE))
    group.report(None, None)
    group.seal()
    assert fired == ["refused"]
    assert group.too_large


def test_queue_full_is_not_taken_for_too_large() -> None:
    group, fired = _group()
    group.failed(QueueFull("full"))
    group.seal()
    assert fired == ["full"]
    assert not group.too_large


@given(
    reports=st.lists(st.booleans(), min_size=0, max_size=30),
    seal_at=st.integers(min_value=0, max_value=30),
)
def test_fires_exactly_once_whatever_the_interleaving(reports: list[bool], seal_at: int) -> None:
    group, fired = _group()
    group.written = len(reports)
    seal_at = min(seal_at, len(reports))
    for index, ok in enumerate(reports):
        if index == seal_at:
            group.seal()
        group.report(None if ok else _Err(2, f"e{index}"), None)
    if seal_at == len(reports):
        group.seal()
    group.seal()  # sealing twice changes nothing
    first_error = next((f"e{i}" for i, ok in enumerate(reports) if not ok), None)
    assert fired == [first_error]


class _Payload:
    """Stands in for a task's records, held by the task's callback."""


def _fire_group_holding(payload: _Payload) -> None:
    group = DeliveryGroup(lambda _error: group.by_topic.get("out", payload))
    group.written = 1
    group.seal()
    group.report(None, None)


def test_a_fired_group_lets_go_of_its_callback() -> None:
    """A task's callback refers to its group (the write proof): once fired, no cycle is
    left, so reference counting alone frees the task's payload (the hot roles run the
    cyclic collector rarely: platform/runtime.py)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        payload = _Payload()
        held = weakref.ref(payload)
        _fire_group_holding(payload)
        del payload
        assert held() is None
    finally:
        if was_enabled:
            gc.enable()
