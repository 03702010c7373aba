"""``feature_backfill`` on a real broker: a time range of INPUT_TOPIC in batches, polars.

Small on purpose (60 records, batches of 16): it proves the batch path end to end (the
range is cut by record time, batches span partitions, bad records are counted and left
out, every part holds the window features of its own batch); the speed of big batches
is the benchmark's business (scripts/bench_features.py).
"""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Producer
from dagster import DagsterInstance, materialize

from streamplane.assets.backfill import feature_backfill
from streamplane.platform.features import WINDOW_COLUMNS, get_window_engine
from streamplane.platform.features.backfill import BACKFILL_SCHEMA
from streamplane.platform.kafka.admin import ensure_topics
from streamplane.resources import KafkaResource, StreamplaneResource
from tests.support.topics import FreshTopics
from tests.unit.platform.features.events import encode, event

pytestmark = pytest.mark.kafka

START_MS = 1_704_067_200_000  # record times of the range: START_MS + i
LATE_MS = START_MS + 10**6  # records after the range
IN_RANGE, LATE, BATCH = 40, 20, 16


def demo_values(count: int, first: int) -> list[bytes]:
    values = []
    for i in range(first, first + count):
        if i % 10 == 3:
            values.append(b"{not json")
        else:
            obj = event(event_id=f"e-{i}", user_id=f"u-{i % 4}", value=i - 20, ts=START_MS + i)
            values.append(encode(obj)[0])
    return values


def produce(bootstrap: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i, value in enumerate(demo_values(IN_RANGE, 0)):
        producer.produce(topic, value, key=str(i).encode(), timestamp=START_MS + i)
    for i, value in enumerate(demo_values(LATE, IN_RANGE)):
        producer.produce(topic, value, key=str(i).encode(), timestamp=LATE_MS + i)
    assert producer.flush(30) == 0


def test_backfill_writes_window_features_of_a_range_in_batches(
    kafka_bootstrap: str, topics: FreshTopics, instance: DagsterInstance, tmp_path: Path
) -> None:
    ensure_topics({"bootstrap.servers": kafka_bootstrap}, {topics.input: 2})
    produce(kafka_bootstrap, topics.input)
    streamplane = StreamplaneResource(
        kafka=KafkaResource(bootstrap_servers=kafka_bootstrap),
        input_topic=topics.input,
        output_topic=topics.output,
        dlq_topic=topics.dlq,
        consumer_group=topics.group,
    )
    out = tmp_path / "backfill"
    (out).mkdir()
    (out / "part-00009.parquet").write_bytes(b"stale")  # an earlier run's part goes away
    config = {
        "engine": "polars",
        "batch_rows": BATCH,
        "start_ms": START_MS,
        "end_ms": LATE_MS,
        "directory": str(out),
        "read_timeout_s": 60,
    }
    result = materialize(
        [feature_backfill],
        resources={"streamplane": streamplane},
        run_config={"ops": {"feature_backfill": {"config": config}}},
        instance=instance,
    )
    assert result.success
    [materialization] = result.asset_materializations_for_node("feature_backfill")
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    bad = sum(1 for i in range(IN_RANGE) if i % 10 == 3)
    assert metadata["dagster/row_count"] == IN_RANGE - bad
    assert metadata["bad_records"] == bad
    assert metadata["engine"] == "polars"

    parts = sorted(out.glob("part-*.parquet"))
    assert [p.name for p in parts] == [
        f"part-{i:05d}.parquet" for i in range(math.ceil(IN_RANGE / BATCH))
    ]
    assert metadata["parts"] == len(parts)
    tables = [pq.read_table(p) for p in parts]
    for table in tables:
        assert table.schema.equals(BACKFILL_SCHEMA)
        # Each part holds its own batch's window features, as the engine computes them.
        expected = get_window_engine("polars").compute(table)
        assert table.select(list(WINDOW_COLUMNS)).equals(expected)
        per_user = dict(
            zip(table["user_id"].to_pylist(), table["user_events"].to_pylist(), strict=True)
        )
        assert sum(per_user.values()) == table.num_rows
    everything = pa.concat_tables(tables)
    expected_ids = {f"e-{i}" for i in range(IN_RANGE) if i % 10 != 3}
    assert set(everything["event_id"].to_pylist()) == expected_ids  # nothing late, nothing twice
    assert everything.num_rows == len(expected_ids)
    assert set(everything["src_partition"].to_pylist()) == {0, 1}
    assert all(START_MS <= ts < LATE_MS for ts in everything["src_timestamp_ms"].to_pylist())
