"""The Dagster assets: Kafka topics as external assets, the feature snapshot and checks.

Lineage: ``raw_events`` (INPUT_TOPIC) -> ``feature_events`` (OUTPUT_TOPIC) ->
``feature_snapshot`` (Parquet); ``raw_events`` -> ``feature_backfill`` (window features
of a topic range, Parquet parts).
"""

from streamplane.assets.backfill import feature_backfill
from streamplane.assets.snapshot import (
    feature_events_dlq_rate,
    feature_snapshot,
    feature_snapshot_no_nulls,
)
from streamplane.assets.topics import FEATURE_EVENTS, RAW_EVENTS, topic_specs

__all__ = [
    "FEATURE_EVENTS",
    "RAW_EVENTS",
    "feature_backfill",
    "feature_events_dlq_rate",
    "feature_snapshot",
    "feature_snapshot_no_nulls",
    "topic_specs",
]
