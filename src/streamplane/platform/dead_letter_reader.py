"""Reading dead letters back: each record of DLQ_TOPIC with its ``sp-*`` headers.

A dead letter carries the input record's value and key, its source (``sp-src-topic``,
``sp-src-partition``, ``sp-src-offset``), ``sp-tenant``, ``sp-attempt`` and the error
(``sp-error`` the reason, ``sp-error-kind`` its kind). ``streamplane dlq tail`` prints
them one per line; the Dagster lag sensor counts them by tenant and kind. Reads are
assign-only (:mod:`streamplane.platform.kafka.reader`): no group, no commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from streamplane.platform import headers as h
from streamplane.platform.kafka.reader import read_range, read_tail
from streamplane.platform.kafka.types import Message

__all__ = ["DeadLetter", "count_by", "dead_letter", "read_dead_letters", "tail_dead_letters"]

# A line shows this much of the value: enough to recognise a record, never a wall.
VALUE_EXCERPT_CHARS = 80
# Range reads of the DLQ come in batches of this many records.
BATCH = 5000


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter: where it sits, where it came from, and why."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    source: str
    tenant: str
    kind: str
    reason: str
    attempt: str
    value: bytes

    def line(self, excerpt: int = VALUE_EXCERPT_CHARS) -> str:
        """One line: coordinates, source, tenant, kind, reason and a value excerpt, escaped.

        Control characters, newlines and bytes that are not UTF-8 are escaped, so one
        dead letter is always exactly one line of plain text.
        """
        value = _escape(self.value.decode("utf-8", "backslashreplace"))
        if len(value) > excerpt:
            value = value[:excerpt] + "..."
        return (
            f"{self.topic}/{self.partition}@{self.offset} src={_escape(self.source)} "
            f"tenant={_escape(self.tenant)} kind={_escape(self.kind)} "
            f"attempt={_escape(self.attempt)} reason={_quote(self.reason)} value={_quote(value)}"
        )


def _escape(text: str) -> str:
    """Printable ASCII kept; everything else as a backslash escape."""
    return text.encode("unicode_escape").decode("ascii")


def _quote(text: str) -> str:
    return '"' + _escape(text).replace('"', '\\"') + '"'


def _header(headers: Iterable[tuple[str, bytes | None]], name: str, default: str) -> str:
    found = default
    for key, value in headers:
        if key == name and value is not None:
            found = value.decode("utf-8", "replace")
    return found


def dead_letter(message: Message) -> DeadLetter:
    """The dead letter in a consumed DLQ record (missing headers read as ``?``)."""
    headers = message.headers() or []
    source = (
        f"{_header(headers, h.SRC_TOPIC, '?')}/{_header(headers, h.SRC_PARTITION, '?')}"
        f"@{_header(headers, h.SRC_OFFSET, '?')}"
    )
    return DeadLetter(
        topic=message.topic(),
        partition=message.partition(),
        offset=message.offset(),
        timestamp_ms=message.timestamp()[1],
        source=source,
        tenant=_header(headers, h.TENANT, h.DEFAULT_TENANT),
        kind=_header(headers, h.ERROR_KIND, "unknown"),
        reason=_header(headers, h.ERROR, ""),
        attempt=_header(headers, h.ATTEMPT, "?"),
        value=message.value() or b"",
    )


def tail_dead_letters(
    conf: Mapping[str, object], topic: str, count: int, timeout: float = 30
) -> list[DeadLetter]:
    """About the last ``count`` dead letters, oldest first (by timestamp, then position).

    Raises:
        KafkaUnavailable: the topic could not be read in time.
    """
    letters = [dead_letter(m) for m in read_tail(conf, topic, count, timeout).messages]
    letters.sort(key=lambda d: (d.timestamp_ms, d.partition, d.offset))
    return letters[-count:] if count else []


def read_dead_letters(
    conf: Mapping[str, object], topic: str, start_ms: int, end_ms: int, timeout: float = 10
) -> list[DeadLetter]:
    """The dead letters timestamped in ``[start_ms, end_ms)``.

    Raises:
        KafkaUnavailable: the topic could not be read in time.
    """
    letters: list[DeadLetter] = []
    for batch in read_range(conf, topic, BATCH, start_ms=start_ms, end_ms=end_ms, timeout=timeout):
        letters.extend(dead_letter(m) for m in batch)
    return letters


def count_by(letters: Iterable[DeadLetter], attribute: str) -> dict[str, int]:
    """How many of ``letters`` have each value of ``attribute`` (``tenant``, ``kind``)."""
    counts: dict[str, int] = {}
    for letter in letters:
        value = str(getattr(letter, attribute))
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))
