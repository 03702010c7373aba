"""The embedded development broker: a real single-node Apache Kafka (KRaft) on the JDK.

:mod:`.jars` resolves Kafka's jars with Maven through ``pom.xml`` and caches them;
:mod:`.kraft` writes the broker's files and formats its log dir; :mod:`.process` runs
the JVM (:class:`EmbeddedBroker`); :mod:`.foreground` is ``streamplane broker``.
"""

from streamplane.dev.broker.foreground import run_broker
from streamplane.dev.broker.jars import (
    POM_PATH,
    default_cache_dir,
    ensure_jars,
    find_java,
    find_maven,
    kafka_version,
)
from streamplane.dev.broker.process import EmbeddedBroker

__all__ = [
    "POM_PATH",
    "EmbeddedBroker",
    "default_cache_dir",
    "ensure_jars",
    "find_java",
    "find_maven",
    "kafka_version",
    "run_broker",
]
