"""``feature_snapshot`` and its checks, run as ``feature_snapshot_job`` on a real broker.

The output topic holds rows made by the runtime's own polars feature engine from demo
events, so the snapshot reads exactly what workers write.
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import polars as pl
import pytest
from confluent_kafka import Producer
from dagster import AssetKey, DagsterInstance, Definitions

from streamplane.assets import (
    feature_events_dlq_rate,
    feature_snapshot,
    feature_snapshot_no_nulls,
    topic_specs,
)
from streamplane.assets.feature_reader import FEATURE_SCHEMA, read_tail
from streamplane.dev.demo_events import events
from streamplane.jobs import feature_snapshot_job
from streamplane.platform.features.base import get_engine
from streamplane.platform.kafka.admin import ensure_topics
from streamplane.resources import KafkaResource, SnapshotResource, StreamplaneResource
from tests.support.topics import FreshTopics

pytestmark = pytest.mark.kafka


def feature_rows(count: int) -> list[bytes]:
    """Feature rows as workers write them, from ``count`` valid demo events."""
    values = [e.value for e in events(count, tenants=3, users=50, bad_fraction=0.0, seed=3)]
    now = int(time.time() * 1000)
    return get_engine("polars").transform(values, [now] * count).values


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i, value in enumerate(values):
        producer.produce(topic, value, key=str(i).encode())
    assert producer.flush(30) == 0


def definitions(
    bootstrap: str, topics: FreshTopics, folder: Path, **snapshot: object
) -> Definitions:
    streamplane = StreamplaneResource(
        kafka=KafkaResource(bootstrap_servers=bootstrap),
        input_topic=topics.input,
        output_topic=topics.output,
        dlq_topic=topics.dlq,
        consumer_group=topics.group,
    )
    return Definitions(
        assets=[*topic_specs(topics.input, topics.output, topics.dlq), feature_snapshot],
        asset_checks=[feature_snapshot_no_nulls, feature_events_dlq_rate],
        jobs=[feature_snapshot_job],
        resources={
            "streamplane": streamplane,
            "snapshot": SnapshotResource(directory=str(folder), **snapshot),
        },
    )


def check_results(result: object) -> dict[str, bool]:
    evaluations = result.get_asset_check_evaluations()  # type: ignore[attr-defined]
    return {e.check_name: e.passed for e in evaluations}


def test_snapshot_materializes_latest_features_with_metadata(
    kafka_bootstrap: str, topics: FreshTopics, instance: DagsterInstance, tmp_path: Path
) -> None:
    conf = {"bootstrap.servers": kafka_bootstrap}
    ensure_topics(conf, {topics.input: 3, topics.output: 3, topics.dlq: 3})
    produce(kafka_bootstrap, topics.output, feature_rows(600))
    produce(kafka_bootstrap, topics.input, [b"{}"] * 100)
    produce(kafka_bootstrap, topics.dlq, [b"{}"] * 2)  # 2 % dead-lettered: under 5 %

    defs = definitions(kafka_bootstrap, topics, tmp_path, records=300)
    result = defs.resolve_job_def("feature_snapshot_job").execute_in_process(instance=instance)

    assert result.success
    (materialization,) = result.asset_materializations_for_node("feature_snapshot")
    metadata = materialization.metadata
    assert metadata["dagster/row_count"].value == 300
    assert metadata["complete"].value is True
    columns = [c.name for c in metadata["dagster/column_schema"].value.columns]
    assert columns == list(FEATURE_SCHEMA)
    assert metadata["first_event_time"].value <= metadata["last_event_time"].value
    frame = pl.read_parquet(tmp_path / "feature_snapshot.parquet")
    assert frame.height == 300
    assert frame["tenant"].null_count() == 0
    assert check_results(result) == {
        "feature_snapshot_no_nulls": True,
        "feature_events_dlq_rate": True,
    }
    event = instance.get_latest_materialization_event(AssetKey("feature_snapshot"))
    assert event is not None


def test_checks_fail_on_nulls_and_a_high_dead_letter_rate(
    kafka_bootstrap: str, topics: FreshTopics, instance: DagsterInstance, tmp_path: Path
) -> None:
    conf = {"bootstrap.servers": kafka_bootstrap}
    ensure_topics(conf, {topics.input: 1, topics.output: 1, topics.dlq: 1})
    rows = [orjson.loads(v) for v in feature_rows(20)]
    rows[3]["tenant"] = None  # breaks the contract: tenant is required
    produce(kafka_bootstrap, topics.output, [orjson.dumps(r) for r in rows])
    produce(kafka_bootstrap, topics.input, [b"{}"] * 10)
    produce(kafka_bootstrap, topics.dlq, [b"{}"] * 5)  # 50 % dead-lettered

    defs = definitions(kafka_bootstrap, topics, tmp_path, max_dlq_rate=0.1)
    result = defs.resolve_job_def("feature_snapshot_job").execute_in_process(
        instance=instance, raise_on_error=False
    )

    assert check_results(result) == {
        "feature_snapshot_no_nulls": False,
        "feature_events_dlq_rate": False,
    }
    evaluation = next(
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "feature_snapshot_no_nulls"
    )
    assert evaluation.metadata["null_counts"].value == {"tenant": 1}


def test_read_tail_of_an_empty_topic_is_an_empty_frame(
    kafka_bootstrap: str, topics: FreshTopics
) -> None:
    ensure_topics({"bootstrap.servers": kafka_bootstrap}, {topics.output: 2})
    tail = read_tail({"bootstrap.servers": kafka_bootstrap}, topics.output, 100, timeout=20)
    assert tail.complete
    assert tail.frame.height == 0
    assert list(tail.frame.columns) == list(FEATURE_SCHEMA)
