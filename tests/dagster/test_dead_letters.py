"""The lag sensor counts dead letters on the real broker: by offset, never by timestamp.

Letters here carry timestamps an hour old, as a letter that keeps its input record's
time (or one delivered late) does, and the topic appears only after the sensor's first
tick, as it does when the supervisor creates it. The count must hold every letter once,
with the total, the per-tenant and the per-kind counts in agreement.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from confluent_kafka import Producer
from dagster import AssetObservation, DagsterInstance, SensorResult, build_sensor_context

from streamplane.platform.kafka.admin import ensure_topics
from streamplane.resources import FleetResource, KafkaResource, StreamplaneResource
from streamplane.sensors.kafka_lag import build_kafka_lag_sensor
from tests.support.topics import FreshTopics

pytestmark = pytest.mark.kafka

# No worker runs: this test is about the dead_letters observation only.
FLEET = FleetResource(max_workers=0)
HOUR_MS = 3_600_000
KINDS = ("parse", "schema", "attempts")
TENANTS = ("acme", "globex", "initech", "umbrella")


def tick(
    instance: DagsterInstance, resource: StreamplaneResource, cursor: str | None
) -> SensorResult:
    with build_sensor_context(
        instance=instance, cursor=cursor, resources={"streamplane": resource, "fleet": FLEET}
    ) as context:
        result = build_kafka_lag_sensor()(context)
    assert isinstance(result, SensorResult)
    return result


def dead_letters(result: SensorResult) -> dict[str, object]:
    events = [e for e in result.asset_events if e.asset_key.path == ["dead_letters"]]
    assert len(events) == 1, result.asset_events
    assert isinstance(events[0], AssetObservation)
    return {k: v.value for k, v in events[0].metadata.items()}


def write_letters(producer: Producer, topic: str, first: int, n: int, timestamp_ms: int) -> None:
    """``n`` letters, kind and tenant cycling, all timestamped ``timestamp_ms``."""
    for i in range(first, first + n):
        producer.produce(
            topic,
            b'{"tenant": oops',
            partition=i % 3,
            timestamp=timestamp_ms,
            headers=[
                ("sp-error-kind", KINDS[i % len(KINDS)].encode()),
                ("sp-tenant", TENANTS[i % len(TENANTS)].encode()),
                ("sp-error", b"not JSON"),
            ],
        )
    assert producer.flush(30) == 0


def expected(n: int) -> tuple[Counter[str], Counter[str]]:
    kinds = Counter(KINDS[i % len(KINDS)] for i in range(n))
    tenants = Counter(TENANTS[i % len(TENANTS)] for i in range(n))
    return kinds, tenants


def assert_counts(meta: dict[str, object], n: int) -> None:
    kinds, tenants = expected(n)
    assert meta["dead_letters_total"] == n
    assert {k: meta.get(f"dead_letters_kind_{k}") for k in kinds} == dict(kinds)
    assert {t: meta.get(f"dead_letters_tenant_{t}") for t in tenants} == dict(tenants)
    by_kind = sum(int(v) for k, v in meta.items() if k.startswith("dead_letters_kind_"))  # type: ignore[call-overload]
    by_tenant = sum(int(v) for k, v in meta.items() if k.startswith("dead_letters_tenant_"))  # type: ignore[call-overload]
    assert by_kind == by_tenant == n
    assert meta["dead_letters_unread"] == 0


def test_letters_with_old_timestamps_are_counted_once_by_tenant_and_kind(
    instance: DagsterInstance, kafka_bootstrap: str, fresh_topics: FreshTopics
) -> None:
    conf = {"bootstrap.servers": kafka_bootstrap}
    ensure_topics(conf, {fresh_topics.input: 2})
    producer = Producer(conf)
    for i in range(10):
        producer.produce(fresh_topics.input, b"{}", partition=i % 2)
    assert producer.flush(30) == 0
    resource = StreamplaneResource(
        kafka=KafkaResource(bootstrap_servers=kafka_bootstrap),
        input_topic=fresh_topics.input,
        dlq_topic=fresh_topics.dlq,
        consumer_group=fresh_topics.group,
    )

    # The first tick comes before the dead-letter topic exists: no observation, no count.
    first = tick(instance, resource, None)
    assert not [e for e in first.asset_events if e.asset_key.path == ["dead_letters"]]

    # Then letters come, timestamped an hour before any tick.
    ensure_topics(conf, {fresh_topics.dlq: 3})
    old = int(time.time() * 1000) - HOUR_MS
    write_letters(producer, fresh_topics.dlq, 0, 30, old)
    second = tick(instance, resource, first.cursor)
    assert_counts(dead_letters(second), 30)
    assert "tenant=" in str(dead_letters(second)["latest"])

    # More, older still than the last tick's read: counted once, the earlier ones not again.
    write_letters(producer, fresh_topics.dlq, 30, 12, old - HOUR_MS)
    third = tick(instance, resource, second.cursor)
    assert_counts(dead_letters(third), 42)

    # Nothing new: the counts stand.
    fourth = tick(instance, resource, third.cursor)
    assert_counts(dead_letters(fourth), 42)
