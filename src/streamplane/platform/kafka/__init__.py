"""Kafka for streamplane: the embedded development broker and admin/lag helpers.

The embedded broker is a real single-node Apache Kafka (KRaft) run from jars that Maven
fetches through ``pom.xml`` beside this file; the admin helpers work against any cluster.
"""

from streamplane.platform.kafka.admin import (
    committed_offsets,
    end_offsets,
    ensure_topics,
    group_lag,
    topic_partitions,
)
from streamplane.platform.kafka.broker import EmbeddedBroker, ensure_jars, run_broker
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
    "EmbeddedBroker",
    "KafkaAdminError",
    "KafkaPlatformError",
    "KafkaUnavailable",
    "committed_offsets",
    "end_offsets",
    "ensure_jars",
    "ensure_topics",
    "group_lag",
    "run_broker",
    "topic_partitions",
]
