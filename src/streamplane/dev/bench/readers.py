"""The consumer configuration of the bench's readers (read-back and the visibility tail)."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["reader_config"]


def reader_config(kafka: Mapping[str, str], group: str, **extra: object) -> dict[str, object]:
    """A reader of assigned partitions: no join and no commit (the id is only required)."""
    return {
        **kafka,
        "group.id": group,
        "enable.auto.commit": False,
        "fetch.queue.backoff.ms": 10,
        **extra,
    }
