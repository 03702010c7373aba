"""The Kafka topics as external assets: ``raw_events`` -> ``feature_events``.

Dagster does not write these topics (the supervisor and workers do), so they are asset
specs, not materializable assets: the lineage shows where features come from, the lag
sensor records observations of ``raw_events`` (end offsets, total and per-partition
lag, stuck partitions), and ``feature_snapshot`` materializes downstream of them.
"""

from __future__ import annotations

from dagster import AssetKey, AssetSpec

__all__ = ["DEAD_LETTERS", "FEATURE_EVENTS", "GROUP", "RAW_EVENTS", "topic_specs"]

RAW_EVENTS = AssetKey("raw_events")
FEATURE_EVENTS = AssetKey("feature_events")
DEAD_LETTERS = AssetKey("dead_letters")
GROUP = "streaming"


def topic_specs(input_topic: str, output_topic: str, dlq_topic: str) -> list[AssetSpec]:
    """The specs of the input and output topics, named after the deployed topics."""
    raw_events = AssetSpec(
        RAW_EVENTS,
        description=(
            f"Raw events in Kafka topic {input_topic!r}, consumed by the supervisors. "
            "Observed by kafka_lag_sensor every tick: end offsets and the group's lag."
        ),
        group_name=GROUP,
        kinds={"kafka"},
        metadata={"topic": input_topic, "dead_letter_topic": dlq_topic},
    )
    feature_events = AssetSpec(
        FEATURE_EVENTS,
        deps=[RAW_EVENTS],
        description=(
            f"Feature records in Kafka topic {output_topic!r}, written by the workers from "
            "raw_events (one per valid event; invalid ones go to the dead-letter topic)."
        ),
        group_name=GROUP,
        kinds={"kafka"},
        metadata={"topic": output_topic},
    )
    dead_letters = AssetSpec(
        DEAD_LETTERS,
        deps=[RAW_EVENTS],
        description=(
            f"Dead letters in Kafka topic {dlq_topic!r}: raw events the plane could not turn "
            "into features, each with its sp-error reason and sp-error-kind. Observed by "
            "kafka_lag_sensor every tick: counts and rates per tenant and per error kind, and "
            "the newest letters (read them all with `streamplane dlq tail`)."
        ),
        group_name=GROUP,
        kinds={"kafka"},
        metadata={"topic": dlq_topic},
    )
    return [raw_events, feature_events, dead_letters]
