"""Errors raised by streamplane's Kafka layer.

librdkafka's ``KafkaException`` never leaves this package: :mod:`.errors` translates it,
transient failures into :class:`KafkaUnavailable` and the rest into a permanent error
(:class:`KafkaAdminError`, :class:`ProduceFailed`, :class:`CommitFailed`), chained to the
original with ``raise ... from exc``.
"""

from streamplane.exceptions import PermanentError, StreamplaneError, TransientError


class KafkaPlatformError(StreamplaneError):
    """Base class of every error raised by ``streamplane.platform.kafka``."""


class BrokerError(KafkaPlatformError):
    """The embedded development broker could not be prepared, started or stopped."""


class BrokerToolMissing(BrokerError, PermanentError):
    """A program the embedded broker needs (``java`` 17+ or ``mvn``) is not installed.

    The message is a single line naming what to install, so that test fixtures can pass
    it straight to ``pytest.skip`` and the CLI can print it as is.
    """

    def __init__(self, tool: str, message: str) -> None:
        super().__init__(message)
        self.tool = tool


class BrokerStartError(BrokerError):
    """The broker's jars could not be fetched, or its JVM exited or never became ready.

    The message carries the tail of the Maven output or of the broker's log, which is
    where the reason is.
    """


class KafkaUnavailable(KafkaPlatformError, TransientError):
    """Kafka did not answer in time or answered with a retriable error; retrying may work.

    ``code`` is librdkafka's error code (``confluent_kafka.KafkaError``), or ``None``
    when the deadline ran out before any answer.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class KafkaAdminError(KafkaPlatformError, PermanentError):
    """Kafka refused an admin request for a reason retrying will not fix.

    Examples: an unknown topic, an invalid partition count, an authorization failure.
    ``code`` is librdkafka's error code (``confluent_kafka.KafkaError``) when Kafka gave
    one, so callers can tell, say, ``UNKNOWN_TOPIC_OR_PART`` from the rest.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ProduceFailed(KafkaPlatformError, PermanentError):
    """Kafka refused a record for good (too large, unknown topic, not authorized).

    ``code`` is librdkafka's error code when Kafka gave one.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class QueueFull(KafkaPlatformError, TransientError):
    """The producer's local queue is full: serve delivery reports, then produce again."""


class CommitFailed(KafkaPlatformError, TransientError):
    """An offset commit was not accepted (a rebalance, a coordinator moving).

    The next commit carries the same offsets again.
    """


class TransactionFenced(KafkaPlatformError, PermanentError):
    """A newer producer took this transactional id (or the broker fenced its epoch).

    The producer is dead for good: nothing it wrote in its open transaction becomes
    visible, and a new one (with a new transactional id) must take over.
    """


class TransactionAborted(KafkaPlatformError, TransientError):
    """The transaction could not commit and was aborted: nothing it wrote is visible.

    Examples: a write failed, or the consumer group moved to a newer generation than the
    group metadata the offsets were sent with. The same work may be tried again.
    """
