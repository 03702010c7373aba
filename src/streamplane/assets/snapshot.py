"""``feature_snapshot``: the latest feature records as a Parquet file, and its checks.

The snapshot is materialized on a schedule (``feature_snapshot_schedule``): the latest
``SnapshotResource.records`` records of OUTPUT_TOPIC, read with polars into
``<directory>/feature_snapshot.parquet`` (written to a temporary file and renamed, so a
reader never sees half a file), with row count, schema and event-time range as metadata.

Checks: the snapshot has no nulls in the feature contract's required columns; the
dead-letter rate (dead-lettered records per input record, from end offsets) stays under
``SnapshotResource.max_dlq_rate``.
"""

import os
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    asset,
    asset_check,
)

from streamplane.assets.feature_reader import REQUIRED_COLUMNS, TopicTail, read_tail
from streamplane.assets.topics import FEATURE_EVENTS, GROUP
from streamplane.platform.kafka.exceptions import KafkaAdminError
from streamplane.resources import SnapshotResource, StreamplaneResource

__all__ = ["feature_events_dlq_rate", "feature_snapshot", "feature_snapshot_no_nulls"]


@asset(
    deps=[FEATURE_EVENTS],
    group_name=GROUP,
    kinds={"polars", "parquet"},
    description="The latest feature records from OUTPUT_TOPIC, as one Parquet file.",
)
def feature_snapshot(
    context: AssetExecutionContext, streamplane: StreamplaneResource, snapshot: SnapshotResource
) -> MaterializeResult:  # type: ignore[type-arg]
    """Read the tail of OUTPUT_TOPIC and write it to the snapshot file."""
    tail = read_tail(
        streamplane.kafka.librdkafka_conf(),
        streamplane.output_topic,
        snapshot.records,
        snapshot.read_timeout_s,
    )
    if not tail.complete:
        context.log.warning("read deadline passed before every partition's end; partial")
    path = write_parquet(tail.frame, snapshot.path)
    return MaterializeResult(metadata=snapshot_metadata(tail, path, streamplane.output_topic))


def write_parquet(frame: pl.DataFrame, path: Path) -> Path:
    """Write ``frame`` to ``path`` atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".parquet.partial")
    frame.write_parquet(partial)
    os.replace(partial, path)
    return path


def snapshot_metadata(tail: TopicTail, path: Path, topic: str) -> dict[str, MetadataValue]:
    """Row count, schema, event-time range and where the file is."""
    frame = tail.frame
    schema = TableSchema(
        columns=[TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()]
    )
    metadata: dict[str, MetadataValue] = {
        "dagster/row_count": MetadataValue.int(frame.height),
        "dagster/column_schema": MetadataValue.table_schema(schema),
        "path": MetadataValue.path(str(path.resolve())),
        "topic": MetadataValue.text(topic),
        "complete": MetadataValue.bool(tail.complete),
    }
    if frame.height:
        first, last = frame["ts"].min(), frame["ts"].max()
        metadata["first_event_time"] = MetadataValue.timestamp(_from_ms(first))
        metadata["last_event_time"] = MetadataValue.timestamp(_from_ms(last))
    return metadata


def _from_ms(value: object) -> datetime:
    return datetime.fromtimestamp(int(str(value)) / 1000, tz=UTC)


@asset_check(
    asset=feature_snapshot,
    description="The snapshot has no nulls in the feature contract's required columns.",
)
def feature_snapshot_no_nulls(snapshot: SnapshotResource) -> AssetCheckResult:
    """Count nulls per required column of the snapshot file."""
    if not snapshot.path.exists():
        return AssetCheckResult(passed=False, description=f"{snapshot.path} does not exist")
    frame = pl.read_parquet(snapshot.path)
    missing = [name for name in REQUIRED_COLUMNS if name not in frame.columns]
    nulls = {name: frame[name].null_count() for name in REQUIRED_COLUMNS if name in frame.columns}
    offending = {name: count for name, count in nulls.items() if count}
    return AssetCheckResult(
        passed=not missing and not offending,
        metadata={
            "rows": MetadataValue.int(frame.height),
            "null_counts": MetadataValue.json(offending),
            "missing_columns": MetadataValue.json(missing),
        },
    )


@asset_check(
    asset=FEATURE_EVENTS,
    description="Dead-lettered records per input record stay under max_dlq_rate.",
)
def feature_events_dlq_rate(
    streamplane: StreamplaneResource, snapshot: SnapshotResource
) -> AssetCheckResult:
    """Compare the dead-letter topic's size with the input topic's, from end offsets."""
    kafka = streamplane.kafka
    inputs = sum(kafka.end_offsets(streamplane.input_topic).values())
    try:
        dead = sum(kafka.end_offsets(streamplane.dead_letter_topic).values())
    except KafkaAdminError:
        dead = 0  # no dead-letter topic yet: nothing was dead-lettered
    rate = dead / inputs if inputs else 0.0
    return AssetCheckResult(
        passed=rate <= snapshot.max_dlq_rate,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "dlq_rate": MetadataValue.float(rate),
            "threshold": MetadataValue.float(snapshot.max_dlq_rate),
            "dead_lettered": MetadataValue.int(dead),
            "input_records": MetadataValue.int(inputs),
        },
    )
