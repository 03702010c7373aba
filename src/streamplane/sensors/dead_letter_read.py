"""One tick's read of DLQ_TOPIC: each partition from its position in the count to its end.

An assign-only consumer (:func:`streamplane.platform.kafka.reader.reader_config`: no
group joined, nothing committed) reads from the positions of a
:class:`~streamplane.sensors.dead_letter_count.LetterCount` to the high watermarks seen
at the start, counting each letter as it comes, so whatever the deadline leaves unread
is read by the next tick. The plane's own readers work by time range or tail, which is
what this avoids (see :mod:`streamplane.sensors.dead_letter_count` for why).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from streamplane.platform.dead_letter_reader import DeadLetter, dead_letter
from streamplane.platform.kafka.consumer import GroupConsumer
from streamplane.platform.kafka.exceptions import KafkaUnavailable
from streamplane.platform.kafka.reader import reader_config
from streamplane.sensors.dead_letter_count import LetterCount

__all__ = ["LetterRead", "read_new_letters"]

# Letters kept for the observation's ``latest``: enough to recognise what is failing.
LATEST = 5
# Records per consume call: large, so a backlog of letters costs few calls.
_CONSUME_MAX = 5000
# Each consume call waits at most this long, so the deadline is checked often.
_CONSUME_WAIT_S = 0.2

ConsumerFactory = Callable[[Mapping[str, object]], GroupConsumer]


@dataclass(frozen=True)
class LetterRead:
    """What one read found besides the counts it added.

    Attributes:
        ends: Each partition's high watermark when the read began.
        newest: The newest letters read (by timestamp, then position), oldest first.
        complete: Every partition was read to ``ends`` before the deadline.
    """

    ends: dict[int, int]
    newest: list[DeadLetter]
    complete: bool


def _eofs_into(found: list[tuple[int, int]]) -> Callable[[int, int], None]:
    """An ``on_eof`` that collects ``(partition, offset)`` into ``found``."""
    return lambda partition, offset: found.append((partition, offset))


def _sort_key(letter: DeadLetter) -> tuple[int, int, int]:
    return (letter.timestamp_ms, letter.partition, letter.offset)


def read_new_letters(
    conf: Mapping[str, object],
    topic: str,
    count: LetterCount,
    timeout: float,
    consumer_factory: ConsumerFactory = GroupConsumer,
) -> LetterRead:
    """Count into ``count`` the letters of ``topic`` from its positions to the end.

    ``count`` is updated letter by letter, so it is consistent even when this raises:
    work on a copy to throw a failed tick's reading away.

    Raises:
        KafkaUnavailable: the topic does not exist (yet), or the cluster did not answer
            the metadata and watermark requests in time.
    """
    deadline = time.monotonic() + timeout

    def left() -> float:
        return max(deadline - time.monotonic(), 0.01)

    # "earliest": should retention delete letters under a running read, go on from the
    # oldest one left rather than jump to the end and pass the rest uncounted.
    consumer = consumer_factory({**reader_config(conf), "auto.offset.reset": "earliest"})
    try:
        partitions = consumer.partitions_of(topic, left())
        if partitions is None:
            raise KafkaUnavailable(f"dead-letter topic {topic!r} does not exist (yet)")
        marks = {p: consumer.watermarks((topic, p), left()) for p in partitions}
        starts = count.start_offsets(marks)
        pending = {p: high for p, (_, high) in marks.items() if starts[p] < high}
        consumer.assign({(topic, p): starts[p] for p in pending})
        newest: list[DeadLetter] = []

        def done(partition: int) -> None:
            consumer.pause([(topic, partition)])
            del pending[partition]

        while pending and time.monotonic() < deadline:
            eofs: list[tuple[int, int]] = []
            messages = consumer.consume(
                _CONSUME_MAX, min(_CONSUME_WAIT_S, left()), _eofs_into(eofs)
            )
            letters = [dead_letter(m) for m in messages]
            for letter in letters:
                # Every letter delivered is counted, also past the target: positions
                # move over exactly the letters counted.
                count.add(letter)
                target = pending.get(letter.partition)
                if target is not None and letter.offset + 1 >= target:
                    done(letter.partition)
            newest = heapq.nlargest(LATEST, [*newest, *letters], key=_sort_key)
            # An end-of-partition event comes inside consume, before its batch's records
            # are handled here: applied after them, it never passes a letter uncounted.
            for partition, offset in eofs:
                if partition in pending:
                    count.reached(partition, offset)
                    done(partition)
        return LetterRead(
            ends={p: high for p, (_, high) in marks.items()},
            newest=sorted(newest, key=_sort_key),
            complete=not pending,
        )
    finally:
        consumer.close()
