"""What the lag sensor records besides lag: throughput, backlog per tenant, dead letters.

Each tick compares its readings with the previous tick's (kept in the lag cursor's
``traffic`` part) and records rates, so the asset pages plot them:

- on ``raw_events``: ``records_in_per_s`` (end offsets' growth), ``records_out_per_s``
  (the group's committed offsets' growth: records durably handled), and
  ``queued_tenant_<t>``, each tenant's backlog held by the supervisors (consumed, not yet
  handed to a worker; from their ``/v1/status``);
- on ``dead_letters``: from one read of DLQ_TOPIC by offset
  (:mod:`streamplane.sensors.dead_letter_read`), ``dead_letters_total`` (letters
  counted), ``dead_letters_tenant_<t>`` and ``dead_letters_kind_<k>`` (the same letters
  by their ``sp-tenant`` / ``sp-error-kind`` headers, so each set sums to the total),
  their rates this tick (``dead_letters_per_s``, ``dead_letter_rate_tenant_<t>``,
  ``dead_letter_rate_kind_<k>``), ``dead_letters_unread`` (letters past the end of this
  tick's read, left to the next), ``dead_letters_skipped`` when retention deleted letters
  before they were read, and ``latest``, the newest few as ``streamplane dlq tail``
  prints them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dagster import AssetKey, AssetObservation, MetadataValue

from streamplane.platform.dead_letter_reader import DeadLetter
from streamplane.sensors.dead_letter_count import LetterCount

__all__ = ["DEAD_LETTERS", "Traffic", "dead_letter_observation", "rate"]

DEAD_LETTERS = AssetKey("dead_letters")


def rate(now: float, before: float | None, seconds: float) -> float:
    """Per-second growth from ``before`` to ``now``; 0 without a previous reading."""
    if before is None or seconds <= 0:
        return 0.0
    return round(max(now - before, 0.0) / seconds, 2)


@dataclass
class Traffic:
    """One tick's readings, serialised into the lag cursor for the next."""

    at: float = field(default_factory=time.time)
    input_end: int | None = None
    committed: int | None = None
    letters: LetterCount = field(default_factory=LetterCount)

    def to_dict(self) -> dict[str, Any]:
        """The cursor form."""
        return {
            "at": self.at,
            "input_end": self.input_end,
            "committed": self.committed,
            "dead_letters": self.letters.to_dict(),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Traffic | None:
        """Parse the cursor form; None when absent or unreadable (a first tick).

        A cursor from before the count kept its read positions has no
        ``dead_letters`` part: its count starts afresh from the retained letters.
        """
        try:
            return cls(
                at=float(raw["at"]),
                input_end=_opt_int(raw.get("input_end")),
                committed=_opt_int(raw.get("committed")),
                letters=LetterCount.from_dict(raw.get("dead_letters")),
            )
        except (KeyError, TypeError, ValueError):
            return None


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def throughput_metadata(now: Traffic, before: Traffic | None) -> dict[str, MetadataValue]:
    """``records_in_per_s`` and ``records_out_per_s`` since the previous tick."""
    seconds = now.at - before.at if before is not None else 0.0
    return {
        "records_in_per_s": MetadataValue.float(
            rate(now.input_end or 0, before.input_end if before else None, seconds)
        ),
        "records_out_per_s": MetadataValue.float(
            rate(now.committed or 0, before.committed if before else None, seconds)
        ),
    }


def queued_metadata(queued: Mapping[str, int]) -> dict[str, MetadataValue]:
    """``queued_tenant_<t>`` for each tenant the supervisors hold records of."""
    return {f"queued_tenant_{t}": MetadataValue.int(n) for t, n in sorted(queued.items())}


def dead_letter_observation(
    topic: str,
    now: Traffic,
    before: Traffic | None,
    ends: Mapping[int, int],
    newest: list[DeadLetter],
) -> AssetObservation:
    """The ``dead_letters`` observation of one tick (see the module docstring).

    ``ends`` are the high watermarks the tick's read went to, ``newest`` the newest
    letters it read. Rates need a previous tick that read the topic too: the first read
    counts every retained letter at once, which is no rate.
    """
    count = now.letters
    previous = (
        before.letters if before is not None and before.letters.positions is not None else None
    )
    seconds = now.at - before.at if before is not None else 0.0
    metadata: dict[str, MetadataValue] = {
        "topic": MetadataValue.text(topic),
        "dead_letters_total": MetadataValue.int(count.total),
        "dead_letters_per_s": MetadataValue.float(
            rate(count.total, previous.total if previous else None, seconds)
        ),
        "dead_letters_unread": MetadataValue.int(count.unread(ends)),
    }
    if count.skipped:
        metadata["dead_letters_skipped"] = MetadataValue.int(count.skipped)
    for label, counts, earlier in (
        ("tenant", count.by_tenant, previous.by_tenant if previous else None),
        ("kind", count.by_kind, previous.by_kind if previous else None),
    ):
        for name, n in sorted(counts.items()):
            metadata[f"dead_letters_{label}_{name}"] = MetadataValue.int(n)
            metadata[f"dead_letter_rate_{label}_{name}"] = MetadataValue.float(
                rate(n, None if earlier is None else earlier.get(name, 0), seconds)
            )
    if newest:
        body = "\n".join(f"    {d.line()}" for d in newest)
        metadata["latest"] = MetadataValue.md(
            f"Newest dead letters of this tick (`streamplane dlq tail` prints more):\n\n{body}"
        )
    return AssetObservation(asset_key=DEAD_LETTERS, metadata=metadata)
