"""The admin and lag helpers and the tests' topic reader, on a real broker."""

from __future__ import annotations

import socket

import pytest
from confluent_kafka import Consumer, KafkaError, Producer

from streamplane.platform.kafka.admin import (
    committed_offsets,
    end_offsets,
    ensure_topics,
    group_lag,
    topic_partitions,
)
from streamplane.platform.kafka.exceptions import KafkaAdminError, KafkaUnavailable
from tests.support.deadline import wait_until
from tests.support.topics import FreshTopics, read_all, unique_name

pytestmark = pytest.mark.kafka


def _conf(bootstrap: str) -> dict[str, str]:
    return {"bootstrap.servers": bootstrap}


def _produce(bootstrap: str, topic: str, count: int, partitions: int = 1) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(count):
        producer.produce(
            topic,
            key=f"k{i}".encode(),
            value=f"v{i}".encode(),
            partition=i % partitions,
            headers=[("seq", str(i).encode()), ("source", b"test")],
        )
    assert producer.flush(30) == 0, "records left unflushed"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_ensure_topics_is_idempotent(kafka_bootstrap: str, fresh_topics: FreshTopics) -> None:
    conf = _conf(kafka_bootstrap)
    topics = {fresh_topics.input: 3, fresh_topics.output: 2}
    ensure_topics(conf, topics)
    ensure_topics(conf, topics)
    # A mismatched count is left alone (logged), not an error.
    ensure_topics(conf, {fresh_topics.input: 5})
    assert topic_partitions(conf, fresh_topics.input) == [0, 1, 2]
    assert topic_partitions(conf, fresh_topics.output) == [0, 1]


def test_ensure_topics_rejects_an_invalid_name(kafka_bootstrap: str) -> None:
    with pytest.raises(KafkaAdminError) as caught:
        ensure_topics(_conf(kafka_bootstrap), {"not a valid name!": 1})
    assert caught.value.code == KafkaError.TOPIC_EXCEPTION
    assert caught.value.__cause__ is not None


def test_unknown_topic_is_a_permanent_error(kafka_bootstrap: str) -> None:
    with pytest.raises(KafkaAdminError) as caught:
        end_offsets(_conf(kafka_bootstrap), unique_name("missing"), timeout=10)
    assert caught.value.code == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_unreachable_cluster_is_transient() -> None:
    conf = {"bootstrap.servers": f"127.0.0.1:{_closed_port()}"}
    with pytest.raises(KafkaUnavailable):
        end_offsets(conf, "anything", timeout=1)


def test_produced_records_read_back_with_headers(
    kafka_bootstrap: str, fresh_topics: FreshTopics
) -> None:
    ensure_topics(_conf(kafka_bootstrap), {fresh_topics.input: 3})
    _produce(kafka_bootstrap, fresh_topics.input, 30, partitions=3)

    records = read_all(kafka_bootstrap, fresh_topics.input)

    assert len(records) == 30
    assert {r.value for r in records} == {f"v{i}".encode() for i in range(30)}
    for record in records:
        seq = int(record.headers["seq"])
        assert record.key == f"k{seq}".encode()
        assert record.partition == seq % 3
        assert record.headers["source"] == b"test"
        assert record.timestamp_ms > 0
    for partition in range(3):
        offsets = [r.offset for r in records if r.partition == partition]
        assert offsets == list(range(10))
    assert len(read_all(kafka_bootstrap, fresh_topics.input, expected=7)) == 7


def test_read_all_of_an_empty_topic_is_empty(
    kafka_bootstrap: str, fresh_topics: FreshTopics
) -> None:
    ensure_topics(_conf(kafka_bootstrap), {fresh_topics.input: 2})
    assert read_all(kafka_bootstrap, fresh_topics.input, timeout=10) == []


def test_offsets_and_lag_follow_a_consumer(kafka_bootstrap: str, fresh_topics: FreshTopics) -> None:
    conf = _conf(kafka_bootstrap)
    topic, group = fresh_topics.input, fresh_topics.group
    ensure_topics(conf, {topic: 2})
    _produce(kafka_bootstrap, topic, 10, partitions=2)

    assert end_offsets(conf, topic) == {0: 5, 1: 5}
    assert committed_offsets(conf, group, topic) == {}
    assert group_lag(conf, group, topic) == {0: 5, 1: 5}

    # A real subscriber consumes partition 0's records and commits what it processed.
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    seen: list[int] = []
    try:
        consumer.subscribe([topic])

        def consume_some() -> bool:
            for message in consumer.consume(num_messages=10, timeout=0.5):
                assert message.error() is None, message.error()
                offset = message.offset()
                if message.partition() == 0 and offset is not None and offset < 3:
                    seen.append(offset)
                    consumer.commit(message=message, asynchronous=False)
            return len(seen) == 3

        wait_until(consume_some, timeout=60, message=lambda: f"consumed only {seen}")
    finally:
        consumer.close()

    assert committed_offsets(conf, group, topic) == {0: 3}
    assert group_lag(conf, group, topic) == {0: 2, 1: 5}
    # Another topic's commits stay out of this topic's answer.
    assert committed_offsets(conf, group, fresh_topics.output) == {}
