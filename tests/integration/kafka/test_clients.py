"""The Kafka client layer against a real broker: produce, consume, commit, read."""

from __future__ import annotations

import threading
import time

import pytest

from streamplane.platform.kafka import admin, reader
from streamplane.platform.kafka.consumer import GroupConsumer
from streamplane.platform.kafka.exceptions import KafkaUnavailable, ProduceFailed
from streamplane.platform.kafka.producer import DeliveryGroup, DurableProducer
from streamplane.platform.kafka.types import TopicPartition
from streamplane.testing.topics import FreshTopics

pytestmark = pytest.mark.kafka


def _produce(bootstrap: str, topic: str, count: int) -> None:
    producer = DurableProducer({"bootstrap.servers": bootstrap, "acks": "all"})
    settled = threading.Event()
    errors: list[str | None] = []

    def done(error: str | None) -> None:
        errors.append(error)
        settled.set()

    group = DeliveryGroup(done)
    for i in range(count):
        group.written += 1
        producer.produce_waiting(
            topic, f"v{i}".encode(), f"k{i}".encode(), [("h", b"1")], group.report, poll=True
        )
    group.seal()
    assert producer.flush(30) == 0
    assert settled.wait(5)
    assert errors == [None]


def _group_consumer(
    bootstrap: str, group: str, extra: dict[str, object] | None = None
) -> GroupConsumer:
    """A member of ``group`` that starts at the beginning of the log."""
    return GroupConsumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"}
        | (extra or {})
    )


def test_group_consumer_commits_what_it_is_told(
    kafka_bootstrap: str, fresh_topics: FreshTopics
) -> None:
    conf = {"bootstrap.servers": kafka_bootstrap}
    topic = fresh_topics.input
    admin.ensure_topics(conf, {topic: 2})
    _produce(kafka_bootstrap, topic, 40)
    consumer = _group_consumer(kafka_bootstrap, fresh_topics.group, {"enable.auto.commit": False})
    assigned: list[TopicPartition] = []
    consumer.subscribe([topic], on_assign=assigned.extend, on_revoke=lambda tps: None)
    seen: dict[int, list[int]] = {}
    deadline = time.monotonic() + 30
    while sum(map(len, seen.values())) < 40 and time.monotonic() < deadline:
        for message in consumer.consume(100, 0.2):
            seen.setdefault(message.partition(), []).append(message.offset())
            assert message.headers() == [("h", b"1")]
    assert sorted(assigned) == [(topic, 0), (topic, 1)]
    assert sum(map(len, seen.values())) == 40
    ends = {(topic, p): max(offsets) + 1 for p, offsets in seen.items()}
    consumer.commit(ends, asynchronous=False)
    assert consumer.group_metadata().startswith(b"CGMD")
    consumer.close()
    committed = admin.committed_offsets(conf, fresh_topics.group, topic)
    assert committed == {p: offset for (_, p), offset in ends.items()}


def test_consume_returns_when_a_record_arrives_not_at_its_timeout(
    kafka_bootstrap: str, fresh_topics: FreshTopics
) -> None:
    # librdkafka's batch consume waits for its whole batch or its timeout: a trickle of
    # records used to wait out the supervisor's poll interval on every call.
    conf = {"bootstrap.servers": kafka_bootstrap}
    topic = fresh_topics.input
    admin.ensure_topics(conf, {topic: 1})
    consumer = _group_consumer(kafka_bootstrap, fresh_topics.group)
    consumer.subscribe([topic], on_assign=lambda tps: None, on_revoke=lambda tps: None)
    _produce(kafka_bootstrap, topic, 1)
    got: list[int] = []
    deadline = time.monotonic() + 30
    while not got and time.monotonic() < deadline:
        got = [m.offset() for m in consumer.consume(1000, 0.5)]
    assert got == [0]
    later: list[int] = []
    waiting = threading.Thread(
        target=lambda: later.extend(m.offset() for m in consumer.consume(1000, 600)),
        daemon=True,
    )
    waiting.start()
    _produce(kafka_bootstrap, topic, 3)
    waiting.join(120)  # far below the consume's own 600 s
    assert not waiting.is_alive(), "consume waited for 1000 records instead of returning"
    assert later, "consume returned nothing though records arrived"
    assert later == list(range(1, 1 + len(later)))
    consumer.close()


def test_reader_reads_tails_and_ranges(kafka_bootstrap: str, fresh_topics: FreshTopics) -> None:
    conf = {"bootstrap.servers": kafka_bootstrap}
    topic = fresh_topics.input
    admin.ensure_topics(conf, {topic: 3})
    _produce(kafka_bootstrap, topic, 90)
    tail = reader.read_tail(conf, topic, 30, timeout=30)
    assert tail.complete
    ends = admin.end_offsets(conf, topic)
    assert sum(ends.values()) == 90
    # Each partition gives its last ceil(30 / 3) = 10 records, or all it has.
    assert len(tail.messages) == sum(min(end, 10) for end in ends.values())
    for message in tail.messages:
        assert message.offset() >= ends[message.partition()] - 10
    batches = list(reader.read_range(conf, topic, 25, timeout=30))
    assert [len(b) for b in batches[:-1]] == [25] * (len(batches) - 1)
    values = sorted(m.value() for batch in batches for m in batch)
    assert values == sorted(f"v{i}".encode() for i in range(90))


def test_missing_topic_and_oversized_record_are_clear_errors(
    kafka_bootstrap: str, fresh_topics: FreshTopics
) -> None:
    conf = {"bootstrap.servers": kafka_bootstrap}
    with pytest.raises(KafkaUnavailable, match="not readable"):
        reader.read_tail(conf, fresh_topics.output, 10, timeout=5)
    producer = DurableProducer({**conf, "message.max.bytes": 10_000})
    with pytest.raises(ProduceFailed) as caught:
        producer.produce(fresh_topics.output, b"x" * 20_000)
    assert caught.value.code is not None
