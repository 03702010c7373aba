"""``feature_backfill``: window features for a range of INPUT_TOPIC, as Parquet parts.

The batch job a GPU is for (docs/gpu.md): an assign-only consumer (no group joined,
nothing committed) reads every partition of the topic from the first record at or
after ``start_ms`` up to, not including, the first at or after ``end_ms`` (or the end
offsets seen at start), in batches of ``batch_rows`` records; each batch's window
features are computed with the configured engine and written as one Parquet part under
``directory`` by `streamplane.platform.features.backfill.run_backfill`.
"""

import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field

from streamplane.assets.topics import GROUP, RAW_EVENTS
from streamplane.exceptions import TransientError
from streamplane.platform.features.backfill import RawBatch, run_backfill
from streamplane.platform.features.loading import load_window_engine
from streamplane.resources import StreamplaneResource

__all__ = ["BackfillConfig", "BackfillReadError", "feature_backfill", "read_range"]

# Each consume call waits at most this long, so the deadline is checked often.
_CONSUME_WAIT_S = 0.2
# Records per consume call: large calls keep the per-call cost small at 1M-row batches.
_CONSUME_MAX = 10_000


class BackfillReadError(TransientError):
    """The topic range could not be read (broker unreachable, topic missing) in time."""


class BackfillConfig(Config):
    """Run configuration of ``feature_backfill``."""

    engine: Literal["polars", "cudf"] = Field(
        default="polars",
        description="Window feature engine: polars (CPU) or cudf (GPU, batches of 1M+ rows).",
    )
    batch_rows: int = Field(
        default=1_000_000, ge=1, description="Records per batch (the unit the engine sees)."
    )
    start_ms: int | None = Field(
        default=None, description="First record time (epoch ms) to include; unset: the start."
    )
    end_ms: int | None = Field(
        default=None, description="Record time (epoch ms) to stop before; unset: the end now."
    )
    directory: str = Field(
        default=".data/feature_backfill", description="Folder of the part-NNNNN.parquet files."
    )
    read_timeout_s: float = Field(
        default=600.0, gt=0, description="Most seconds spent reading the range."
    )


@asset(
    deps=[RAW_EVENTS],
    group_name=GROUP,
    kinds={"polars", "parquet"},
    description=(
        "Window features (per-user and per-user-hour/day aggregates) recomputed for a "
        "range of INPUT_TOPIC in large batches, on polars or cuDF, as Parquet parts."
    ),
)
def feature_backfill(
    context: AssetExecutionContext, config: BackfillConfig, streamplane: StreamplaneResource
) -> MaterializeResult:  # type: ignore[type-arg]
    """Read the configured range of INPUT_TOPIC and write its window features."""
    engine = load_window_engine(config.engine, setting="feature_backfill.engine")
    batches = read_range(
        streamplane.kafka.librdkafka_conf(),
        streamplane.input_topic,
        config.batch_rows,
        start_ms=config.start_ms,
        end_ms=config.end_ms,
        timeout=config.read_timeout_s,
    )
    started = time.perf_counter()
    result = run_backfill(batches, engine, Path(config.directory))
    elapsed = time.perf_counter() - started
    context.log.info(f"backfill wrote {result.rows} rows in {len(result.parts)} parts")
    return MaterializeResult(
        metadata={
            "dagster/row_count": MetadataValue.int(result.rows),
            "bad_records": MetadataValue.int(result.bad_records),
            "parts": MetadataValue.int(len(result.parts)),
            "engine": MetadataValue.text(engine.name),
            "directory": MetadataValue.path(str(Path(config.directory).resolve())),
            "topic": MetadataValue.text(streamplane.input_topic),
            "compute_seconds": MetadataValue.float(float(round(result.compute_seconds, 3))),
            "rows_per_s": MetadataValue.float(
                float(round(result.rows / elapsed)) if elapsed else 0.0
            ),
        }
    )


def read_range(
    conf: Mapping[str, str],
    topic: str,
    batch_rows: int,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    timeout: float = 600,
) -> Iterator[RawBatch]:
    """Yield the records of `topic` in the time range, `batch_rows` at a time.

    Raises:
        BackfillReadError: no metadata or offsets in time, or the deadline passed
            before every partition reached the end of the range.
    """
    deadline = time.monotonic() + timeout
    consumer = Consumer(
        {
            **conf,
            "group.id": f"streamplane-backfill-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            # librdkafka's 1 s default idles a consumer reading a backlog (FACTS.md).
            "fetch.queue.backoff.ms": 10,
        }
    )
    try:
        ends = _assign_range(consumer, topic, start_ms, end_ms, deadline)
        yield from _batches(consumer, topic, ends, batch_rows, deadline)
    except KafkaException as exc:
        raise BackfillReadError(f"reading {topic!r}: {exc}") from exc
    finally:
        consumer.close()


def _remaining(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.01)


def _offsets_at(
    consumer: Consumer, topic: str, partitions: list[int], ms: int, deadline: float
) -> dict[int, int]:
    """First offset at or after `ms` by partition (-1: none that late)."""
    found = consumer.offsets_for_times(
        [TopicPartition(topic, p, ms) for p in partitions], timeout=_remaining(deadline)
    )
    return {tp.partition: tp.offset for tp in found}


def _assign_range(
    consumer: Consumer, topic: str, start_ms: int | None, end_ms: int | None, deadline: float
) -> dict[int, int]:
    """Assign each partition at the range's start; returns its end offset by partition."""
    described = consumer.list_topics(topic, timeout=_remaining(deadline)).topics.get(topic)
    if described is None or described.error is not None or not described.partitions:
        raise BackfillReadError(f"topic {topic!r} is not readable: {described and described.error}")
    partitions = sorted(described.partitions)
    marks = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=_remaining(deadline))
        for p in partitions
    }
    starts = {p: low for p, (low, _) in marks.items()}
    ends = {p: high for p, (_, high) in marks.items()}
    if start_ms is not None:
        for p, offset in _offsets_at(consumer, topic, partitions, start_ms, deadline).items():
            starts[p] = offset if offset >= 0 else ends[p]
    if end_ms is not None:
        for p, offset in _offsets_at(consumer, topic, partitions, end_ms, deadline).items():
            if offset >= 0:
                ends[p] = min(ends[p], offset)
    todo = {p: ends[p] for p in partitions if ends[p] > starts[p]}
    consumer.assign([TopicPartition(topic, p, starts[p]) for p in todo])
    return todo


def _batches(
    consumer: Consumer, topic: str, ends: dict[int, int], batch_rows: int, deadline: float
) -> Iterator[RawBatch]:
    """Consume until every partition reaches its end, yielding full batches on the way."""
    pending = dict(ends)
    values: list[bytes] = []
    timestamps: list[int] = []
    partitions: list[int] = []
    offsets: list[int] = []
    while pending:
        if time.monotonic() >= deadline:
            raise BackfillReadError(
                f"the read deadline passed with partitions {sorted(pending)} short of the range end"
            )
        for message in consumer.consume(num_messages=_CONSUME_MAX, timeout=_CONSUME_WAIT_S):
            partition, offset = message.partition(), message.offset()
            error = message.error()
            if error is not None and error.code() != KafkaError._PARTITION_EOF:
                raise KafkaException(error)
            if partition not in pending or offset is None:
                continue
            if error is None and offset < pending[partition]:
                value = message.value()
                values.append(b"" if value is None else bytes(value))
                timestamps.append(message.timestamp()[1])
                partitions.append(partition)
                offsets.append(offset)
                if len(values) >= batch_rows:
                    yield RawBatch(values, timestamps, partitions, offsets)
                    values, timestamps, partitions, offsets = [], [], [], []
            if offset + (0 if error is not None else 1) >= pending[partition]:
                consumer.pause([TopicPartition(topic, partition)])
                del pending[partition]
    if values:
        yield RawBatch(values, timestamps, partitions, offsets)
