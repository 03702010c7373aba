"""One tick's DLQ read, against a scripted consumer: from the positions to the end."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pytest

from streamplane.platform.kafka.consumer import GroupConsumer
from streamplane.platform.kafka.exceptions import KafkaUnavailable
from streamplane.sensors.dead_letter_count import LetterCount
from streamplane.sensors.dead_letter_read import read_new_letters


@dataclass
class FakeMessage:
    """A consumed dead letter: its place, timestamp and the ``sp-*`` headers."""

    _partition: int
    _offset: int
    _tenant: str
    _timestamp_ms: int = 0

    def topic(self) -> str:
        return "in.dlq"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp_ms)

    def value(self) -> bytes:
        return b"{oops"

    def headers(self) -> list[tuple[str, bytes | None]]:
        return [("sp-tenant", self._tenant.encode()), ("sp-error-kind", b"parse")]


@dataclass
class FakeConsumer:
    """A partition per list of letters; ``consume`` hands out ``per_call`` at a time.

    A partition's end-of-partition report (at ``ends``, which may pass the last letter,
    as a transaction marker does) comes in the same call as its last letters.
    """

    letters: dict[int, list[FakeMessage]]
    ends: dict[int, int]
    per_call: int = 2
    fail_after: int | None = None
    assigned: dict[int, int] = field(default_factory=dict)
    paused: set[int] = field(default_factory=set)
    handed: int = 0
    closed: bool = False

    def partitions_of(self, _topic: str, _timeout: float) -> list[int] | None:
        return sorted(self.letters) or None

    def watermarks(self, tp: tuple[str, int], _timeout: float) -> tuple[int, int]:
        return (0, self.ends[tp[1]])

    def assign(self, starts: Mapping[tuple[str, int], int]) -> None:
        self.assigned = {p: o for (_, p), o in starts.items()}

    def pause(self, partitions: list[tuple[str, int]]) -> None:
        self.paused |= {p for _, p in partitions}

    def consume(
        self, _max: int, _timeout: float, on_eof: Callable[[int, int], None] | None = None
    ) -> list[FakeMessage]:
        out: list[FakeMessage] = []
        for p, position in sorted(self.assigned.items()):
            if p in self.paused:
                continue
            batch = [m for m in self.letters[p] if m.offset() >= position][: self.per_call]
            if self.fail_after is not None and self.handed + len(batch) > self.fail_after:
                raise KafkaUnavailable("consumer failed")
            self.handed += len(batch)
            out.extend(batch)
            self.assigned[p] = batch[-1].offset() + 1 if batch else position
            if not [m for m in self.letters[p] if m.offset() >= self.assigned[p]] and on_eof:
                on_eof(p, self.ends[p])
        return out

    def close(self) -> None:
        self.closed = True


def factory(consumer: FakeConsumer) -> Callable[[Mapping[str, object]], GroupConsumer]:
    def make(conf: Mapping[str, object]) -> GroupConsumer:
        assert conf["auto.offset.reset"] == "earliest"
        assert conf["enable.auto.commit"] is False
        return consumer  # type: ignore[return-value]

    return make


def topic() -> FakeConsumer:
    return FakeConsumer(
        letters={
            0: [FakeMessage(0, i, f"t{i % 2}", 1000 + i) for i in range(5)],
            1: [FakeMessage(1, 0, "t0", 5000), FakeMessage(1, 2, "t1", 9)],
        },
        # Partition 1 ends past its last letter (a commit marker at 3).
        ends={0: 5, 1: 4},
    )


def test_reads_every_partition_to_its_end() -> None:
    consumer = topic()
    count = LetterCount()
    read = read_new_letters({}, "in.dlq", count, 10, factory(consumer))
    assert read.complete
    assert read.ends == {0: 5, 1: 4}
    assert count.total == 7
    assert count.by_tenant == {"t0": 4, "t1": 3}
    assert count.positions == {0: 5, 1: 4}, "the end report passes the marker"
    assert [(d.partition, d.offset) for d in read.newest][-1] == (1, 0), "newest by timestamp"
    assert len(read.newest) == 5
    assert consumer.closed


def test_a_second_read_counts_only_what_came_since() -> None:
    consumer = topic()
    count = LetterCount()
    read_new_letters({}, "in.dlq", count, 10, factory(consumer))
    consumer.letters[0].append(FakeMessage(0, 5, "t9"))
    consumer.ends[0] = 6
    again = FakeConsumer(consumer.letters, consumer.ends)
    read = read_new_letters({}, "in.dlq", count, 10, factory(again))
    assert again.assigned == {0: 6}, "partition 1 had nothing new and was not assigned"
    assert [d.tenant for d in read.newest] == ["t9"]
    assert count.total == 8
    assert count.by_tenant["t9"] == 1


def test_a_read_out_of_time_leaves_the_rest_to_the_next() -> None:
    count = LetterCount()
    read = read_new_letters({}, "in.dlq", count, 0, factory(topic()))
    assert not read.complete
    assert count.total == 0
    assert count.unread(read.ends) == 9
    read_new_letters({}, "in.dlq", count, 10, factory(topic()))
    assert count.total == 7


def test_a_read_failing_midway_leaves_a_consistent_count() -> None:
    failing = topic()
    failing.fail_after = 4  # the first call hands out 4, the second fails
    count = LetterCount()
    with pytest.raises(KafkaUnavailable):
        read_new_letters({}, "in.dlq", count, 10, factory(failing))
    assert failing.closed
    counted = count.total
    assert 0 < counted < 7
    assert sum(count.positions.values()) >= counted  # type: ignore[union-attr]
    read_new_letters({}, "in.dlq", count, 10, factory(topic()))
    assert count.total == 7, "no letter lost or counted twice"


def test_a_missing_topic_raises_and_counts_nothing() -> None:
    count = LetterCount()
    with pytest.raises(KafkaUnavailable, match="does not exist"):
        read_new_letters({}, "in.dlq", count, 10, factory(FakeConsumer({}, {})))
    assert count == LetterCount()
