"""The dead letters counted so far, and where in DLQ_TOPIC the count stands.

Pure logic, no Dagster and no Kafka: :mod:`streamplane.sensors.dead_letter_read` drives
it with what it reads, and the lag sensor keeps it in its cursor between ticks.

The count follows offsets, not timestamps. Each partition's *position* is the next
offset to read: every letter below it has been counted once, none above it has. A tick
reads each partition from its position to the end and moves the position only past the
letters it counted, so a read cut short, a letter whose timestamp is older than the
previous tick (a slow delivery, a letter that keeps its input's time) or a topic created
after the first tick loses nothing and counts nothing twice. The total, the per-tenant
and the per-kind counts all come from the same letters, so they always add up alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streamplane.platform.dead_letter_reader import DeadLetter

__all__ = ["MAX_NAMES", "OTHER", "LetterCount"]

# Tenants and kinds tracked by name in the cursor; the rest add up as "other", so the
# cursor and the metadata stay bounded whatever the tenants are.
MAX_NAMES = 20
OTHER = "other"


def _bounded_add(counts: dict[str, int], name: str) -> None:
    key = name if name in counts or len(counts) < MAX_NAMES else OTHER
    counts[key] = counts.get(key, 0) + 1


@dataclass
class LetterCount:
    """Dead letters counted per tenant and kind, and each partition's read position.

    Attributes:
        positions: Per partition, the next offset to read; None before the first read
            of the topic (which then counts every letter still retained).
        skipped: Offsets that retention deleted before they were read: letters never
            counted (their tenant and kind are unknown).
        by_tenant: Letters counted per ``sp-tenant`` (``MAX_NAMES`` names, then ``other``).
        by_kind: Letters counted per ``sp-error-kind`` (likewise).
    """

    positions: dict[int, int] | None = None
    skipped: int = 0
    by_tenant: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Letters counted: the sum of the per-kind counts, and of the per-tenant ones."""
        return sum(self.by_kind.values())

    def start_offsets(self, marks: Mapping[int, tuple[int, int]]) -> dict[int, int]:
        """Where to read each partition from, given its ``(low, high)`` watermarks.

        A partition seen for the first time starts at its low watermark (every retained
        letter is counted). A position below the low watermark starts there and counts
        the gap as ``skipped``; one above the high watermark means the topic was
        recreated, and starts again at its low watermark. Positions of partitions the
        topic no longer has are dropped. The positions are set to the starts, so a
        partition with nothing to read keeps its place.
        """
        before = self.positions or {}
        starts: dict[int, int] = {}
        for partition, (low, high) in sorted(marks.items()):
            position = before.get(partition)
            if position is None or position > high:
                starts[partition] = low
            elif position < low:
                self.skipped += low - position
                starts[partition] = low
            else:
                starts[partition] = position
        self.positions = dict(starts)
        return starts

    def add(self, letter: DeadLetter) -> None:
        """Count one letter read at its offset, and move its partition past it."""
        positions = self.positions if self.positions is not None else {}
        self.positions = positions
        _bounded_add(self.by_tenant, letter.tenant)
        _bounded_add(self.by_kind, letter.kind)
        positions[letter.partition] = max(positions.get(letter.partition, 0), letter.offset + 1)

    def reached(self, partition: int, offset: int) -> None:
        """A partition was read to ``offset`` (its end): nothing below it is left unread.

        Offsets without a letter (transaction markers, aborted letters a
        ``read_committed`` reader skips) are passed this way.
        """
        positions = self.positions if self.positions is not None else {}
        self.positions = positions
        positions[partition] = max(positions.get(partition, 0), offset)

    def unread(self, ends: Mapping[int, int]) -> int:
        """Offsets between the positions and ``ends`` (high watermarks): not read yet."""
        positions = self.positions or {}
        return sum(max(end - positions.get(p, 0), 0) for p, end in ends.items())

    def copy(self) -> LetterCount:
        """An independent copy (a tick works on one, and keeps the old on failure)."""
        return LetterCount(
            positions=None if self.positions is None else dict(self.positions),
            skipped=self.skipped,
            by_tenant=dict(self.by_tenant),
            by_kind=dict(self.by_kind),
        )

    def to_dict(self) -> dict[str, Any]:
        """The cursor form (partitions as string keys, as JSON needs)."""
        return {
            "positions": (
                None
                if self.positions is None
                else {str(p): o for p, o in sorted(self.positions.items())}
            ),
            "skipped": self.skipped,
            "by_tenant": dict(sorted(self.by_tenant.items())),
            "by_kind": dict(sorted(self.by_kind.items())),
        }

    @classmethod
    def from_dict(cls, raw: Any) -> LetterCount:
        """Parse the cursor form; an absent or unreadable one starts a new count."""
        if not isinstance(raw, Mapping):
            return cls()
        try:
            positions = raw.get("positions")
            return cls(
                positions=(
                    None
                    if positions is None
                    else {int(p): int(o) for p, o in dict(positions).items()}
                ),
                skipped=int(raw.get("skipped", 0)),
                by_tenant={str(k): int(v) for k, v in dict(raw.get("by_tenant", {})).items()},
                by_kind={str(k): int(v) for k, v in dict(raw.get("by_kind", {})).items()},
            )
        except (TypeError, ValueError):
            return cls()
