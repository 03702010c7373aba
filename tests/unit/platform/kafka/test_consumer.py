"""GroupConsumer.consume: what is queued now, else the first record to arrive."""

from __future__ import annotations

from typing import Any

from streamplane.platform.kafka.consumer import GroupConsumer


class _Record:
    def __init__(self, offset: int) -> None:
        self._offset = offset

    def error(self) -> None:
        return None

    def offset(self) -> int:
        return self._offset


class _Client:
    """librdkafka's batch consume: hands out `queued` now, `arriving` only when waited for."""

    def __init__(self, queued: int, arriving: int) -> None:
        self.queued = [_Record(i) for i in range(queued)]
        self.arriving = [_Record(queued + i) for i in range(arriving)]
        self.calls: list[tuple[int, float]] = []

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        self.calls.append((num_messages, timeout))
        if not self.queued and timeout > 0:
            self.queued, self.arriving = self.arriving, []
        taken, self.queued = self.queued[:num_messages], self.queued[num_messages:]
        return taken


def _consumer(client: _Client) -> GroupConsumer:
    consumer = GroupConsumer({})
    consumer._consumer = client  # type: ignore[assignment]
    return consumer


def test_queued_records_come_back_without_waiting() -> None:
    client = _Client(queued=5, arriving=3)
    records = _consumer(client).consume(100, 1.0)
    assert [r.offset() for r in records] == [0, 1, 2, 3, 4]
    assert client.calls == [(100, 0)]


def test_with_nothing_queued_it_waits_for_one_then_takes_what_came_with_it() -> None:
    # A batch consume of 100 would wait out its whole timeout for a trickle of records.
    client = _Client(queued=0, arriving=3)
    records = _consumer(client).consume(100, 1.0)
    assert [r.offset() for r in records] == [0, 1, 2]
    assert client.calls == [(100, 0), (1, 1.0), (99, 0)]


def test_nothing_arriving_returns_empty_after_one_wait() -> None:
    client = _Client(queued=0, arriving=0)
    assert _consumer(client).consume(100, 0.5) == []
    assert client.calls == [(100, 0), (1, 0.5)]


def test_a_zero_timeout_never_waits() -> None:
    client = _Client(queued=0, arriving=3)
    assert _consumer(client).consume(100, 0) == []
    assert client.calls == [(100, 0)]
