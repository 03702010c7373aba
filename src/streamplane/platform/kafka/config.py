"""librdkafka configurations for the supervisor's consumer and the producers.

Tuning numbers carry their reasons; security settings come only from
`Settings.as_librdkafka_dict()`, the allowlist.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata

from confluent_kafka import libversion

from streamplane.config import Settings


def consumer_config(settings: Settings, group: str | None = None) -> dict[str, object]:
    """The supervisor's consumer: manual commits, cooperative-free eager rebalancing."""
    return {
        **settings.kafka.as_librdkafka_dict(),
        "group.id": group or settings.kafka.consumer_group,
        "enable.auto.commit": False,
        # We store and commit offsets ourselves, only once records are durably handled.
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        # The default 1000 ms stalls a consumer draining a backlog ~0.9 s at a time.
        "fetch.queue.backoff.ms": 10,
        # Bound librdkafka's own prefetch so supervisor memory stays bounded under any
        # backlog (our pending-record bound only sees what we have taken from it).
        "queued.max.messages.kbytes": 16384,
        "fetch.max.bytes": 8 * 1024 * 1024,
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 1000,
        "max.poll.interval.ms": 300000,
    }


def producer_config(settings: Settings, client_id: str) -> dict[str, object]:
    """A durable producer: acks=all and idempotence, so a delivery report means written."""
    return {
        **settings.kafka.as_librdkafka_dict(),
        "client.id": client_id,
        "acks": "all",
        "enable.idempotence": True,
        # A task's records are produced in one burst, so they batch without waiting; a
        # short linger keeps the ack round trip (and so the credit cycle) short.
        "linger.ms": 2,
        "batch.num.messages": 10000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 500000,
        "message.timeout.ms": 60000,
    }


def admin_config(settings: Settings) -> dict[str, str]:
    """An AdminClient's configuration."""
    return settings.kafka.as_librdkafka_dict()


def demo_producer_config(conf: Mapping[str, object]) -> dict[str, object]:
    """The demo events' producer (`streamplane produce`, the bench's fill) over ``conf``.

    Throughput over latency: events come in bursts of thousands, so a 20 ms linger
    fills lz4 batches instead of sending a request per few records.
    """
    return {**conf, "linger.ms": 20, "compression.type": "lz4"}


def versions() -> dict[str, str]:
    """The client library versions in use: ``confluent-kafka`` and ``librdkafka``.

    The first is the installed distribution's (``version()``'s shape changed across
    confluent-kafka releases; the distribution's metadata did not).
    """
    return {
        "confluent-kafka": metadata.version("confluent-kafka"),
        "librdkafka": str(libversion()[0]),
    }
