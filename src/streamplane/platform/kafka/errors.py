"""The one seam where librdkafka's errors become streamplane's.

Retriable failures (a broker down, a timeout, a coordinator moving) become
:class:`KafkaUnavailable`, the rest :class:`KafkaAdminError`, :class:`ProduceFailed` or
:class:`CommitFailed`, each chained to the original with ``raise ... from exc``.
``KafkaException`` never leaves ``streamplane.platform.kafka``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from streamplane.platform.kafka.exceptions import (
    KafkaAdminError,
    KafkaPlatformError,
    KafkaUnavailable,
)

# Codes that describe a cluster in motion rather than a wrong request. librdkafka marks
# some errors retriable itself; these are the ones it does not mark but that do pass.
TRANSIENT_CODES = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._RESOLVE,
        KafkaError._WAIT_COORD,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError.NOT_CONTROLLER,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.NOT_COORDINATOR,
        KafkaError.BROKER_NOT_AVAILABLE,
    }
)


def translate(
    exc: KafkaException, what: str, permanent: type[KafkaPlatformError] = KafkaAdminError
) -> KafkaPlatformError:
    """Map a librdkafka exception to KafkaUnavailable (retriable) or ``permanent``."""
    error = exc.args[0] if exc.args else None
    if not isinstance(error, KafkaError):
        return permanent(f"{what}: {exc}")
    return from_error(error, what, permanent)


def from_error(
    error: Any, what: str, permanent: type[KafkaPlatformError] = KafkaAdminError
) -> KafkaPlatformError:
    """Map a librdkafka ``KafkaError`` to KafkaUnavailable or ``permanent``."""
    code: int = error.code()
    message = f"{what}: {error.str()} ({error.name()})"
    if error.retriable() or code in TRANSIENT_CODES:
        return KafkaUnavailable(message, code=code)
    return _with_code(permanent, message, code)


def _with_code(kind: type[KafkaPlatformError], message: str, code: int) -> KafkaPlatformError:
    try:
        return kind(message, code=code)  # type: ignore[call-arg]
    except TypeError:
        return kind(message)


@contextlib.contextmanager
def translated(what: str, permanent: type[KafkaPlatformError] = KafkaAdminError) -> Iterator[None]:
    """Translate any ``KafkaException`` raised in the block."""
    try:
        yield
    except KafkaException as exc:
        raise translate(exc, what, permanent) from exc


def is_partition_eof(error: Any) -> bool:
    """Whether a consumed message's error only says "end of partition" (not an error)."""
    return bool(error.code() == KafkaError._PARTITION_EOF)


MSG_SIZE_TOO_LARGE: int = KafkaError.MSG_SIZE_TOO_LARGE
"""librdkafka's code for a record over ``message.max.bytes`` or the broker's limit."""


def is_message_too_large(error: Any) -> bool:
    """Whether a produce failed because the record exceeds the broker's size limit."""
    return bool(error.code() == MSG_SIZE_TOO_LARGE)


# What a partition of a topic created a moment ago answers until its leader is known to
# every broker: worth retrying briefly, unlike the same codes for an old topic.
LEADER_SETTLING_CODES = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    }
)


def is_leader_settling(exc: KafkaPlatformError) -> bool:
    """Whether a translated error only says a new topic's leadership has not settled yet."""
    return getattr(exc, "code", None) in LEADER_SETTLING_CODES


UNKNOWN_TOPIC_OR_PART: int = KafkaError.UNKNOWN_TOPIC_OR_PART
"""librdkafka's code for a topic (or partition) the cluster does not know."""
