"""Recompute window features over many batches of raw events, one Parquet part each.

The batch path of the window feature set: a source hands over raw record values (the
demo events' JSON, as on the input topic) a batch at a time, typically a million rows;
each batch is parsed on the host (the same validation as the workers'), its four
feature inputs go to the window engine as one Arrow table, and the identity columns
(event id, tenant, source offsets, ...) are attached on the host and written with the
features. No Kafka and no Dagster here: ``streamplane.assets.backfill`` reads the topic
range and runs this as the ``feature_backfill`` asset.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.parquet as pq

from streamplane.platform.features.schema import parse_events
from streamplane.platform.features.window import WINDOW_SCHEMA, WindowEngine

IDENTITY_SCHEMA: Final = pa.schema(
    [
        pa.field("event_id", pa.string()),
        pa.field("tenant", pa.string()),
        pa.field("user_id", pa.string()),
        pa.field("event_type", pa.string()),
        pa.field("skill", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("ts", pa.int64()),
        pa.field("src_partition", pa.int32()),
        pa.field("src_offset", pa.int64()),
        pa.field("src_timestamp_ms", pa.int64()),
    ]
)
"""The columns copied from each valid event, before the window features."""

BACKFILL_SCHEMA: Final = pa.schema([*IDENTITY_SCHEMA, *WINDOW_SCHEMA])
"""Every Parquet part's schema: the identity columns, then `WINDOW_SCHEMA`'s."""


@dataclass(frozen=True, slots=True)
class RawBatch:
    """Raw records of one batch, as columns: values with their Kafka coordinates."""

    values: Sequence[bytes]
    timestamps_ms: Sequence[int]
    partitions: Sequence[int]
    offsets: Sequence[int]


@dataclass
class BackfillResult:
    """What a backfill wrote."""

    rows: int = 0
    """Feature rows written (valid events)."""
    bad_records: int = 0
    """Records that did not parse or broke the schema (not written)."""
    parts: list[Path] = field(default_factory=list)
    """The Parquet files, in batch order."""
    compute_seconds: float = 0.0
    """Wall time inside the window engine, summed over batches."""


def events_table(batch: RawBatch) -> tuple[pa.Table, int]:
    """The valid events of `batch` as an `IDENTITY_SCHEMA` table, and how many were bad."""
    events = parse_events(batch.values, batch.timestamps_ms)
    indices = events.indices
    table = pa.table(
        {
            "event_id": pa.array(events.event_id, pa.string()),
            "tenant": pa.array(events.tenant, pa.string()),
            "user_id": pa.array(events.user_id, pa.string()),
            "event_type": pa.array(events.event_type, pa.string()),
            "skill": pa.array(events.skill, pa.string()),
            "value": pa.array([float(v) for v in events.value], pa.float64()),
            "ts": pa.array(events.ts, pa.int64()),
            "src_partition": pa.array([batch.partitions[i] for i in indices], pa.int32()),
            "src_offset": pa.array([batch.offsets[i] for i in indices], pa.int64()),
            "src_timestamp_ms": pa.array(events.src_timestamp_ms, pa.int64()),
        },
        schema=IDENTITY_SCHEMA,
    )
    return table, len(events.errors)


def write_part(table: pa.Table, path: Path) -> Path:
    """Write `table` to `path` atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    pq.write_table(table, partial)
    os.replace(partial, path)
    return path


def run_backfill(
    batches: Iterable[RawBatch], engine: WindowEngine, directory: Path
) -> BackfillResult:
    """Compute the window features of every batch; write ``part-NNNNN.parquet`` each.

    Parts of an earlier run in `directory` are removed first, so the folder holds
    exactly this run's output. Batches without a valid event write no part.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("part-*.parquet"):
        stale.unlink()
    result = BackfillResult()
    for batch in batches:
        events, bad = events_table(batch)
        result.bad_records += bad
        if not events.num_rows:
            continue
        started = time.perf_counter()
        features = engine.compute(events)
        result.compute_seconds += time.perf_counter() - started
        joined = pa.Table.from_arrays([*events.columns, *features.columns], schema=BACKFILL_SCHEMA)
        result.parts.append(write_part(joined, directory / f"part-{len(result.parts):05d}.parquet"))
        result.rows += joined.num_rows
    return result
