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


def error_headers(kind: str, reason: str) -> HeaderList:
    """The sp-error headers of one dead-letter record."""
    return [
        (ERROR, reason.encode("utf-8", "replace")[:MAX_ERROR_BYTES]),
        (ERROR_KIND, kind.encode()),
    ]
