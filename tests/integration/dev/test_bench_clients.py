"""The bench's Kafka loops on the client layer, on the session broker, in one process.

`test_bench.py` runs the whole bench as a subprocess; these check the pieces that moved
onto the layer (demo events' producer, the passthrough loop, the read-back) on their own.
"""

from __future__ import annotations

import pytest

from streamplane.dev.bench.passthrough import copy_all
from streamplane.dev.bench.progress import bar
from streamplane.dev.bench.routes import Route
from streamplane.dev.bench.verify import Tally, read_until
from streamplane.dev.demo_events import events, produce_events
from streamplane.platform import headers as h
from streamplane.platform.kafka import admin
from streamplane.platform.kafka.config import demo_producer_config
from streamplane.platform.kafka.consumer import BEGINNING, GroupConsumer
from streamplane.platform.kafka.producer import DurableProducer
from streamplane.testing.topics import FreshTopics, read_all

pytestmark = pytest.mark.kafka

COUNT = 3_000


def test_demo_events_then_passthrough_copy_everything_and_commit(
    kafka_bootstrap: str, fresh_topics: FreshTopics
) -> None:
    conf = {"bootstrap.servers": kafka_bootstrap}
    route = Route(fresh_topics.input, fresh_topics.output, fresh_topics.dlq, fresh_topics.group)
    admin.ensure_topics(conf, {route.input: 3, route.output: 3})
    producer = DurableProducer(demo_producer_config(conf))
    stream = events(COUNT, 3, 100, 0.1, seed=1)
    written, bad = produce_events(producer, route.input, stream, None)
    assert written == COUNT
    assert 0 < bad < COUNT
    ends = admin.end_offsets(conf, route.input)
    assert sum(ends.values()) == COUNT

    failures: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    copier = DurableProducer({**conf, "acks": "all", "on_delivery": delivered})
    consumer = GroupConsumer({**conf, "group.id": route.group, "enable.auto.commit": False})
    try:
        consumer.assign({(route.input, p): BEGINNING for p in ends})
        with bar("passthrough", COUNT) as progress:
            copy_all(consumer, copier, route, ends, failures, progress)
    finally:
        consumer.close()
    assert failures == []
    assert admin.committed_offsets(conf, route.group, route.input) == ends
    copied = read_all(kafka_bootstrap, route.output)
    assert sorted(r.value or b"" for r in copied) == sorted(
        r.value or b"" for r in read_all(kafka_bootstrap, route.input)
    )


def test_read_until_visits_each_record_once(
    kafka_bootstrap: str, fresh_topics: FreshTopics
) -> None:
    conf = {"bootstrap.servers": kafka_bootstrap}
    admin.ensure_topics(conf, {fresh_topics.output: 2})
    producer = DurableProducer(conf)
    for offset in range(40):
        headers = h.source_headers(fresh_topics.input, 0, offset, "t", 1)
        producer.produce_waiting(fresh_topics.output, b"{}", None, headers, poll=True)
    assert producer.flush(30) == 0
    tally = Tally.expecting(fresh_topics.input, {0: 40})
    ends = {p: e for p, e in admin.end_offsets(conf, fresh_topics.output).items() if e > 0}
    consumer = GroupConsumer({**conf, "group.id": fresh_topics.group, "enable.auto.commit": False})
    try:
        consumer.assign({(fresh_topics.output, p): BEGINNING for p in ends})
        with bar("verify", 40) as progress:
            read_until(consumer, ends, tally.visit, progress)
    finally:
        consumer.close()
    assert (tally.records, tally.lost, tally.duplicates, tally.unexpected) == (40, 0, 0, 0)
