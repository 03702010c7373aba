"""Kafka for streamplane: admin and lag helpers that work against any cluster.

The embedded development broker lives in :mod:`streamplane.dev.broker`.
"""

from streamplane.platform.kafka.admin import (
    committed_offsets,
    end_offsets,
    ensure_topics,
    group_lag,
    topic_partitions,
)
from streamplane.platform.kafka.exceptions import (
    BrokerError,
    BrokerStartError,
    BrokerToolMissing,
    KafkaAdminError,
    KafkaPlatformError,
    KafkaUnavailable,
)

__all__ = [
    "BrokerError",
    "BrokerStartError",
    "BrokerToolMissing",
    "KafkaAdminError",
    "KafkaPlatformError",
    "KafkaUnavailable",
    "committed_offsets",
    "end_offsets",
    "ensure_topics",
    "group_lag",
    "topic_partitions",
]
