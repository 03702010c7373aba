"""Types the Kafka layer hands out, so that no other module needs confluent-kafka's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeAlias

TopicPartition: TypeAlias = tuple[str, int]
"""A partition as ``(topic, partition)``."""

Headers: TypeAlias = list[tuple[str, str | bytes | None]]
"""Record headers, in order; names may repeat."""

DeliveryCallback: TypeAlias = Callable[[Any, Any], None]
"""librdkafka's delivery report ``(error or None, message)``, on the thread that polls.

Read the error with :func:`streamplane.platform.kafka.errors.is_message_too_large` and
``str(error)``; it is never raised.
"""


class Message(Protocol):
    """One consumed record (confluent-kafka's ``Message``, read-only).

    The layer hands out records only (error messages are dealt with inside it), so
    topic, partition and offset are always set.
    """

    def topic(self) -> str:
        """The record's topic."""

    def partition(self) -> int:
        """The record's partition."""

    def offset(self) -> int:
        """The record's offset."""

    def key(self) -> bytes | None:
        """The record's key."""

    def value(self) -> bytes | None:
        """The record's value."""

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        """The record's headers."""

    def timestamp(self) -> tuple[int, int]:
        """``(type, epoch ms)`` of the record."""

    def error(self) -> Any:
        """The error this message stands for, or None for a record."""


class RecordWriter(Protocol):
    """Writes one record; its delivery report goes to the writer's delivery group."""

    def __call__(self, topic: str, key: bytes | None, value: bytes, headers: Headers) -> None:
        """Queue the record for the producer."""
