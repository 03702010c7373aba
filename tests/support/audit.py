"""The audit of topics, shared with the project: :mod:`streamplane.testing.audit`."""

from streamplane.testing.audit import (
    DEMO_FIELDS,
    Audit,
    Source,
    assert_accounted,
    assert_committed_at_end,
    audit_topics,
    is_malformed_demo,
    source_of,
    uncovered_below,
)

__all__ = [
    "DEMO_FIELDS",
    "Audit",
    "Source",
    "assert_accounted",
    "assert_committed_at_end",
    "audit_topics",
    "is_malformed_demo",
    "source_of",
    "uncovered_below",
]
