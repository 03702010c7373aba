"""A consumer-group member with manual commits: the supervisor's source and the RL buffer.

Rebalance callbacks get plain ``(topic, partition)`` pairs, consumed batches come back
without error messages (end-of-partition markers dropped, the rest logged), and
commits take ``{(topic, partition): offset}``; librdkafka's exceptions are translated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException
from confluent_kafka import TopicPartition as _TP

from streamplane.platform.kafka.errors import is_partition_eof, translate, translated
from streamplane.platform.kafka.exceptions import CommitFailed, KafkaUnavailable
from streamplane.platform.kafka.types import Message, TopicPartition

logger = logging.getLogger(__name__)

Rebalance = Callable[[list[TopicPartition]], None]

#: An offset meaning "the first record still in the log", for :meth:`GroupConsumer.assign`.
BEGINNING: int = OFFSET_BEGINNING


class GroupConsumer:
    """One member of a consumer group; create, ``subscribe``, ``consume``, ``close``.

    Not thread-safe: call it from one thread at a time (rebalance callbacks run inside
    ``consume``, on the caller's thread).
    """

    def __init__(self, conf: Mapping[str, object]) -> None:
        self._conf = dict(conf)
        self._consumer: Consumer | None = None

    @property
    def _client(self) -> Consumer:
        if self._consumer is None:
            with translated("create consumer", KafkaUnavailable):
                self._consumer = Consumer(self._conf)
        return self._consumer

    def subscribe(
        self,
        topics: list[str],
        *,
        on_assign: Rebalance,
        on_revoke: Rebalance,
        on_lost: Rebalance | None = None,
    ) -> None:
        """Join the group on ``topics``; the callbacks see each partition change."""

        def hook(fn: Rebalance) -> Callable[[Any, list[_TP]], None]:
            return lambda _consumer, tps: fn([(tp.topic, tp.partition) for tp in tps])

        self._client.subscribe(
            topics,
            on_assign=hook(on_assign),
            on_revoke=hook(on_revoke),
            on_lost=hook(on_lost or on_revoke),
        )

    def assign(self, starts: Mapping[TopicPartition, int]) -> None:
        """Read these partitions from these offsets, outside any group rebalance."""
        self._client.assign([_TP(t, p, o) for (t, p), o in starts.items()])

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Fetch an assigned partition from ``offset`` next (fetching or paused)."""
        with translated("seek", KafkaUnavailable):
            self._client.seek(_TP(tp[0], tp[1], offset))

    def consume(
        self, max_records: int, timeout: float, on_eof: Callable[[int, int], None] | None = None
    ) -> list[Message]:
        """Up to ``max_records`` records, waiting at most ``timeout`` seconds for the first.

        With ``enable.partition.eof`` set, ``on_eof(partition, offset)`` hears each
        partition reaching its end (transaction markers may sit past the last record).
        It is called during this call, before the caller sees the returned records,
        which may include that partition's last ones: act on it after handling them.

        Raises:
            KafkaUnavailable: the consumer hit a fatal error and must be recreated.
        """
        messages = self._available(max_records, timeout)
        if not messages or all(m.error() is None for m in messages):
            return messages
        records: list[Any] = []
        for message in messages:
            error = message.error()
            if error is None:
                records.append(message)
            elif not is_partition_eof(error):
                self._on_error(error)
            elif on_eof is not None:
                on_eof(message.partition(), message.offset())
        return records

    def _available(self, max_records: int, timeout: float) -> list[Any]:
        """What is queued now; if nothing is, the first record to arrive and its company.

        librdkafka's batch consume returns only once ``max_records`` are in or ``timeout``
        has passed, so a trickle of records waited out the whole timeout: a supervisor
        at half load added its poll interval to every record's latency.
        """
        client = self._client
        messages: list[Any] = client.consume(max_records, 0)
        if messages or timeout <= 0:
            return messages
        messages = client.consume(1, timeout)
        if messages and max_records > 1:
            messages += client.consume(max_records - 1, 0)
        return messages

    def _on_error(self, error: Any) -> None:
        if error.fatal():
            raise KafkaUnavailable(f"consumer failed: {error}", code=error.code())
        logger.warning("consumer error", extra={"error": str(error)})

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        """Stop fetching these partitions (consumed records stay valid)."""
        self._client.pause([_TP(t, p) for t, p in partitions])

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        """Fetch these partitions again."""
        self._client.resume([_TP(t, p) for t, p in partitions])

    def commit(
        self,
        offsets: Mapping[TopicPartition, int],
        asynchronous: bool,
        metadata: Mapping[TopicPartition, str] | None = None,
    ) -> None:
        """Commit the next offset to read per partition, with optional metadata text.

        Raises:
            CommitFailed: the group did not take the commit (it may be rebalancing).
        """
        if not offsets:
            return
        notes = metadata or {}
        tps = [_commit_point(t, p, o, notes.get((t, p))) for (t, p), o in offsets.items()]
        try:
            if asynchronous:
                self._client.commit(offsets=tps, asynchronous=True)
            else:
                self._client.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:
            raise translate(exc, "commit offsets", CommitFailed) from exc

    def committed(
        self, partitions: Iterable[TopicPartition], timeout: float
    ) -> dict[TopicPartition, int]:
        """The group's committed offsets of ``partitions`` (those never committed left out).

        Raises:
            KafkaUnavailable: no answer in time, or the coordinator is moving.
            KafkaAdminError: the request was refused.
        """
        return {tp: offset for tp, (offset, _) in self.commits(partitions, timeout).items()}

    def commits(
        self, partitions: Iterable[TopicPartition], timeout: float
    ) -> dict[TopicPartition, tuple[int, str]]:
        """Like `committed`, with each commit's metadata text ("" when it has none)."""
        with translated("read committed offsets"):
            answer = self._client.committed([_TP(t, p) for t, p in partitions], timeout=timeout)
        return {
            (tp.topic, tp.partition): (tp.offset, tp.metadata or "")
            for tp in answer
            if tp.offset >= 0
        }

    def group_metadata(self) -> bytes:
        """The member's group metadata, serialised (for a transaction in another process)."""
        metadata: bytes = self._client.consumer_group_metadata()
        return metadata

    def watermarks(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        """``(low, high)`` offsets of a partition."""
        with translated(f"watermarks of {tp}", KafkaUnavailable):
            low, high = self._client.get_watermark_offsets(_TP(*tp), timeout=timeout)
        return int(low), int(high)

    def offsets_for_times(
        self, topic: str, partitions: list[int], ms: int, timeout: float
    ) -> dict[int, int]:
        """First offset at or after epoch ``ms`` by partition (-1: none that late)."""
        with translated(f"offsets by time of {topic!r}", KafkaUnavailable):
            found = self._client.offsets_for_times(
                [_TP(topic, p, ms) for p in partitions], timeout=timeout
            )
        return {tp.partition: tp.offset for tp in found}

    def partitions_of(self, topic: str, timeout: float) -> list[int] | None:
        """The sorted partition ids of ``topic``, or None when it does not exist (yet)."""
        with translated(f"describe topic {topic!r}", KafkaUnavailable):
            described = self._client.list_topics(topic, timeout=timeout).topics.get(topic)
        if described is None or described.error is not None or not described.partitions:
            return None
        return sorted(described.partitions)

    def close(self) -> None:
        """Leave the group (after the caller's final commit)."""
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            consumer.close()


def _commit_point(topic: str, partition: int, offset: int, metadata: str | None) -> _TP:
    # confluent-kafka takes a str or no metadata argument at all, not None.
    if metadata:
        return _TP(topic, partition, offset, metadata=metadata)
    return _TP(topic, partition, offset)
