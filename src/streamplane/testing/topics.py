"""Reading topics back in tests, and unique names for per-test topics and groups."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)


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
    """
    deadline = time.monotonic() + timeout
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            # Assign-only reads need a group id in the client config but never join or
            # commit; a random one keeps it from touching any real group.
            "group.id": unique_name("read-all"),
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            # librdkafka's 1 s default leaves a draining consumer idle (see FACTS.md).
            "fetch.queue.backoff.ms": 10,
        }
    )
    records: list[ReadRecord] = []
    try:
        metadata = consumer.list_topics(topic, timeout=max(deadline - time.monotonic(), 0.1))
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            raise AssertionError(
                f"topic {topic!r} is not readable: {described and described.error}"
            )
        partitions = sorted(described.partitions)
        pending: dict[int, int] = {}
        for partition in partitions:
            low, high = _watermarks(consumer, TopicPartition(topic, partition), deadline)
            if expected is not None or high > low:
                pending[partition] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])

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
            for message in consumer.consume(num_messages=500, timeout=0.2):
                partition, offset = message.partition(), message.offset()
                assert partition is not None
                assert offset is not None
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise KafkaException(error)
                    # EOF carries the end offset; with read_committed it stops at the
                    # last stable offset, which is where committed data ends.
                    if expected is None and offset >= pending.get(partition, 0):
                        pending.pop(partition, None)
                    continue
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


def _watermarks(consumer: Consumer, tp: TopicPartition, deadline: float) -> tuple[int, int]:
    """Low and high watermarks, retried while a new topic's leadership settles."""
    while True:
        try:
            low, high = consumer.get_watermark_offsets(
                tp, timeout=max(deadline - time.monotonic(), 0.1)
            )
            return int(low), int(high)
        except KafkaException as exc:
            retriable = exc.args[0].code() in (
                KafkaError.NOT_LEADER_FOR_PARTITION,
                KafkaError.LEADER_NOT_AVAILABLE,
                KafkaError.UNKNOWN_TOPIC_OR_PART,
            )
            if not retriable or time.monotonic() >= deadline:
                raise
            time.sleep(0.1)
