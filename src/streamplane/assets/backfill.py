"""``feature_backfill``: window features for a range of INPUT_TOPIC, as Parquet parts.

The batch job a GPU is for (docs/gpu.md): an assign-only consumer (no group joined,
nothing committed) reads every partition of the topic from the first record at or
after ``start_ms`` up to, not including, the first at or after ``end_ms`` (or the end
offsets seen at start), in batches of ``batch_rows`` records; each batch's window
features are computed with the configured engine and written as one Parquet part under
``directory`` by `streamplane.platform.features.backfill.run_backfill`.
"""

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field

from streamplane.assets.topics import GROUP, RAW_EVENTS
from streamplane.exceptions import TransientError
from streamplane.platform.features.backfill import RawBatch, run_backfill
from streamplane.platform.features.loading import load_window_engine
from streamplane.platform.kafka import reader
from streamplane.platform.kafka.exceptions import KafkaPlatformError
from streamplane.resources import StreamplaneResource

__all__ = ["BackfillConfig", "BackfillReadError", "feature_backfill", "read_range"]


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
    batches = reader.read_range(
        conf, topic, batch_rows, start_ms=start_ms, end_ms=end_ms, timeout=timeout
    )
    try:
        for messages in batches:
            yield RawBatch(
                [m.value() or b"" for m in messages],
                [m.timestamp()[1] for m in messages],
                [m.partition() for m in messages],
                [m.offset() for m in messages],
            )
    except KafkaPlatformError as exc:
        raise BackfillReadError(f"reading {topic!r}: {exc}") from exc
