"""Names of the record headers streamplane writes, and helpers to build them.

Output and dead-letter records carry their source so that duplicates can be detected
downstream (DESIGN.md section 3.2).
"""

from __future__ import annotations

SRC_TOPIC = "sp-src-topic"
SRC_PARTITION = "sp-src-partition"
SRC_OFFSET = "sp-src-offset"
TENANT = "sp-tenant"
ATTEMPT = "sp-attempt"
ERROR = "sp-error"
ERROR_KIND = "sp-error-kind"

#: Headers as confluent-kafka takes them.
HeaderList = list[tuple[str, str | bytes | None]]

#: The input header that names a record's tenant.
TENANT_INPUT = "tenant"
DEFAULT_TENANT = "default"

# sp-error values are truncated: a header is not the place for a whole stack trace.
MAX_ERROR_BYTES = 1024

#: Our header namespace, matched case-insensitively: an input's own header in it is
#: renamed with ORIGINAL_PREFIX, so a producer cannot forge where a dead letter came from.
OURS_PREFIX = "sp-"
ORIGINAL_PREFIX = "x-orig-"


def source_headers(
    topic: str, partition: int, offset: int, tenant: str, attempt: int
) -> HeaderList:
    """The sp-* headers of one output record."""
    return [
        (SRC_TOPIC, topic.encode()),
        (SRC_PARTITION, str(partition).encode()),
        (SRC_OFFSET, str(offset).encode()),
        (TENANT, tenant.encode()),
        (ATTEMPT, str(attempt).encode()),
    ]


class SourceHeaders:
    """Builds the sp-* headers of one task's records: only the offset varies per record.

    The header tuples that do not vary are built once per task and shared by every
    record's list (librdkafka copies them at produce): one tuple per record instead of
    five.
    """

    __slots__ = ("_attempt", "_partition", "_tenants", "_topic")

    def __init__(self, topic: str, partition: int, attempt: int) -> None:
        self._topic = (SRC_TOPIC, topic.encode())
        self._partition = (SRC_PARTITION, str(partition).encode())
        self._attempt = (ATTEMPT, str(attempt).encode())
        self._tenants: dict[str, tuple[str, bytes]] = {}

    def __call__(self, offset: int, tenant: str) -> HeaderList:
        """The headers of the record at `offset`."""
        header = self._tenants.get(tenant)
        if header is None:
            header = self._tenants[tenant] = (TENANT, tenant.encode())
        return [
            self._topic,
            self._partition,
            (SRC_OFFSET, str(offset).encode()),
            header,
            self._attempt,
        ]


def error_headers(kind: str, reason: str) -> HeaderList:
    """The sp-error headers of one dead-letter record."""
    return [
        (ERROR, reason.encode("utf-8", "replace")[:MAX_ERROR_BYTES]),
        (ERROR_KIND, kind.encode()),
    ]


def dead_letter_headers(
    input_headers: HeaderList, source: HeaderList, kind: str, reason: str
) -> HeaderList:
    """The headers of one dead-letter record: the input's own, its source, the error.

    The one place a dead letter's headers are built, by the worker (records it could not
    parse) and by the supervisor (records that exhausted their attempts) alike. Input
    headers in the sp-* namespace are kept under ``x-orig-<name>``: a spoofed
    ``sp-src-offset`` must never appear beside (or ahead of) the real one.
    """
    return [*foreign(input_headers), *source, *error_headers(kind, reason)]


def foreign(input_headers: HeaderList) -> HeaderList:
    """An input's headers with those in our sp-* namespace renamed ``x-orig-<name>``."""
    return [
        (ORIGINAL_PREFIX + name, value) if name[:3].lower() == OURS_PREFIX else (name, value)
        for name, value in input_headers
    ]
