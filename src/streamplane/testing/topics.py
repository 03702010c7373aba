"""Reading topics back in tests, and unique names for per-test topics and groups."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from streamplane.platform.kafka.consumer import BEGINNING, GroupConsumer
from streamplane.platform.kafka.errors import is_leader_settling
from streamplane.platform.kafka.exceptions import KafkaPlatformError
from streamplane.platform.kafka.reader import reader_config
from streamplane.platform.kafka.types import Message, TopicPartition


@dataclass(frozen=True)
class ReadRecord:
    """One record as read back from Kafka."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    timestamp_ms: int


@dataclass(frozen=True)
class FreshTopics:
    """Names unique to one test: input, output and dead-letter topics, and a group."""

    input: str
    output: str
    dlq: str
    group: str


def unique_name(prefix: str) -> str:
    """Return ``prefix`` plus a random suffix; valid as a topic or group name."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def fresh_topic_names(prefix: str = "t") -> FreshTopics:
    """Return a new set of unique names (topics are not created)."""
    return FreshTopics(
        input=unique_name(f"{prefix}-in"),
        output=unique_name(f"{prefix}-out"),
        dlq=unique_name(f"{prefix}-dlq"),
        group=unique_name(f"{prefix}-group"),
    )


def read_all(
    bootstrap: str,
    topic: str,
    expected: int | None = None,
    timeout: float = 60,
) -> list[ReadRecord]:
    """Read ``topic`` from the beginning with a consumer outside any group.

    Without ``expected``: the high watermarks are captured first and the read stops
    once every partition reaches its mark, so records produced later are not waited
    for. With ``expected``: the read waits (up to ``timeout``) until that many records
    have arrived and returns exactly the first ``expected`` read.

    Only committed transactional records are returned (librdkafka's default
    ``read_committed``). Records come back in partition order, by offset.

    Raises:
        AssertionError: the deadline passed first; the message says how far it got.
        KafkaPlatformError: Kafka failed in a way waiting does not fix.
    """
    deadline = time.monotonic() + timeout
    # Assign-only: a random group id that is never joined nor committed to, end of
    # partition reported, and a short fetch backoff (librdkafka's 1 s idles a reader).
    consumer = GroupConsumer(reader_config({"bootstrap.servers": bootstrap}))
    records: list[ReadRecord] = []
    try:
        partitions = consumer.partitions_of(topic, max(deadline - time.monotonic(), 0.1))
        if partitions is None:
            raise AssertionError(f"topic {topic!r} is not readable (unknown or without partitions)")
        pending: dict[int, int] = {}
        for partition in partitions:
            low, high = _watermarks(consumer, (topic, partition), deadline)
            if expected is not None or high > low:
                pending[partition] = high
        consumer.assign({(topic, p): BEGINNING for p in partitions})

        def at_end(partition: int, offset: int) -> None:
            # EOF carries the end offset; with read_committed it stops at the last
            # stable offset, which is where committed data ends.
            if expected is None and offset >= pending.get(partition, 0):
                pending.pop(partition, None)

        def done() -> bool:
            if expected is not None:
                return len(records) >= expected
            return not pending

        while not done():
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"read {len(records)} records from {topic!r} before the deadline; "
                    f"expected {expected if expected is not None else 'the high watermarks'}, "
                    f"partitions still short of their mark: {sorted(pending)}"
                )
            for message in consumer.consume(500, 0.2, on_eof=at_end):
                partition, offset = message.partition(), message.offset()
                if expected is not None and len(records) >= expected:
                    break
                records.append(_to_record(topic, partition, offset, message))
                if expected is None and offset + 1 >= pending.get(partition, 0):
                    pending.pop(partition, None)
    finally:
        consumer.close()
    records.sort(key=lambda record: (record.partition, record.offset))
    return records


def _to_record(topic: str, partition: int, offset: int, message: Message) -> ReadRecord:
    """Copy a consumed message into a ReadRecord (a header without value reads as b"")."""
    raw_headers = message.headers() or []
    pairs = raw_headers.items() if isinstance(raw_headers, dict) else raw_headers
    headers = {
        name: value.encode() if isinstance(value, str) else (value or b"") for name, value in pairs
    }
    key, value = message.key(), message.value()
    _, timestamp_ms = message.timestamp()
    return ReadRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        key=key.encode() if isinstance(key, str) else key,
        value=value.encode() if isinstance(value, str) else value,
        headers=headers,
        timestamp_ms=timestamp_ms,
    )


def _watermarks(consumer: GroupConsumer, tp: TopicPartition, deadline: float) -> tuple[int, int]:
    """Low and high watermarks, retried while a new topic's leadership settles."""
    while True:
        try:
            return consumer.watermarks(tp, max(deadline - time.monotonic(), 0.1))
        except KafkaPlatformError as exc:
            if not is_leader_settling(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.1)
