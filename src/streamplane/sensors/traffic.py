"""What the lag sensor records besides lag: throughput, backlog per tenant, dead letters.

Each tick compares its readings with the previous tick's (kept in the lag cursor's
``traffic`` part) and records rates, so the asset pages plot them:

- on ``raw_events``: ``records_in_per_s`` (end offsets' growth), ``records_out_per_s``
  (the group's committed offsets' growth: records durably handled), and
  ``queued_tenant_<t>``, each tenant's backlog held by the supervisors (consumed, not yet
  handed to a worker; from their ``/v1/status``);
- on ``dead_letters``: ``dead_letters_total`` and ``dead_letters_per_s`` (the DLQ's end
  offsets), and per tenant and per error kind the letters counted since the cursor began
  (``dead_letters_tenant_<t>``, ``dead_letters_kind_<k>``) and their rate this tick
  (``dead_letter_rate_tenant_<t>``, ``dead_letter_rate_kind_<k>``), read from the
  ``sp-tenant`` / ``sp-error-kind`` headers of the letters written since the last tick;
  ``latest`` shows the newest few, as ``streamplane dlq tail`` prints them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dagster import AssetKey, AssetObservation, MetadataValue

from streamplane.platform.dead_letter_reader import DeadLetter, read_dead_letters

__all__ = ["DEAD_LETTERS", "Traffic", "dead_letter_observation", "rate"]

DEAD_LETTERS = AssetKey("dead_letters")
# Tenants and kinds tracked by name in the cursor; the rest add up as "other", so the
# cursor and the metadata stay bounded whatever the tenants are.
MAX_NAMES = 20
# Letters younger than this are left to the next tick: a write in flight would
# otherwise be missed (its timestamp is older than its arrival).
SETTLE_MS = 2000
# The DLQ read of one tick, well inside the sensor's 60 s.
READ_TIMEOUT_S = 5.0
LATEST = 5


def rate(now: float, before: float | None, seconds: float) -> float:
    """Per-second growth from ``before`` to ``now``; 0 without a previous reading."""
    if before is None or seconds <= 0:
        return 0.0
    return round(max(now - before, 0.0) / seconds, 2)


def _bounded(counts: Mapping[str, int], extra: Iterable[str]) -> dict[str, int]:
    out = dict(counts)
    for name in extra:
        key = name if name in out or len(out) < MAX_NAMES else "other"
        out[key] = out.get(key, 0) + 1
    return out


@dataclass
class Traffic:
    """One tick's readings, serialised into the lag cursor for the next."""

    at: float = field(default_factory=time.time)
    input_end: int | None = None
    committed: int | None = None
    dlq_end: int | None = None
    dlq_read_ms: int | None = None
    by_tenant: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The cursor form."""
        return {
            "at": self.at,
            "input_end": self.input_end,
            "committed": self.committed,
            "dlq_end": self.dlq_end,
            "dlq_read_ms": self.dlq_read_ms,
            "by_tenant": self.by_tenant,
            "by_kind": self.by_kind,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Traffic | None:
        """Parse the cursor form; None when absent or unreadable (a first tick)."""
        try:
            return cls(
                at=float(raw["at"]),
                input_end=_opt_int(raw.get("input_end")),
                committed=_opt_int(raw.get("committed")),
                dlq_end=_opt_int(raw.get("dlq_end")),
                dlq_read_ms=_opt_int(raw.get("dlq_read_ms")),
                by_tenant={str(k): int(v) for k, v in dict(raw.get("by_tenant", {})).items()},
                by_kind={str(k): int(v) for k, v in dict(raw.get("by_kind", {})).items()},
            )
        except (KeyError, TypeError, ValueError):
            return None

    def counted(self, letters: list[DeadLetter]) -> Traffic:
        """These readings with ``letters`` added to the per-tenant and per-kind counts."""
        self.by_tenant = _bounded(self.by_tenant, (d.tenant for d in letters))
        self.by_kind = _bounded(self.by_kind, (d.kind for d in letters))
        return self


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


def read_new_letters(
    conf: Mapping[str, object], topic: str, before: Traffic | None, now_ms: int
) -> tuple[list[DeadLetter], int]:
    """The letters written since the previous tick's read, and where this read ends (ms)."""
    end_ms = now_ms - SETTLE_MS
    if before is None or before.dlq_read_ms is None:
        return [], end_ms  # the first tick counts from now on
    letters = read_dead_letters(conf, topic, before.dlq_read_ms, end_ms, READ_TIMEOUT_S)
    return letters, end_ms


def dead_letter_observation(
    topic: str, now: Traffic, before: Traffic | None, letters: list[DeadLetter]
) -> AssetObservation:
    """The ``dead_letters`` observation of one tick (see the module docstring)."""
    seconds = now.at - before.at if before is not None else 0.0
    metadata: dict[str, MetadataValue] = {
        "topic": MetadataValue.text(topic),
        "dead_letters_total": MetadataValue.int(now.dlq_end or 0),
        "dead_letters_per_s": MetadataValue.float(
            rate(now.dlq_end or 0, before.dlq_end if before else None, seconds)
        ),
    }
    for label, counts, previous in (
        ("tenant", now.by_tenant, before.by_tenant if before else {}),
        ("kind", now.by_kind, before.by_kind if before else {}),
    ):
        for name, count in sorted(counts.items()):
            metadata[f"dead_letters_{label}_{name}"] = MetadataValue.int(count)
            metadata[f"dead_letter_rate_{label}_{name}"] = MetadataValue.float(
                rate(count, previous.get(name, 0), seconds)
            )
    newest = sorted(letters, key=lambda d: d.timestamp_ms)[-LATEST:]
    if newest:
        body = "\n".join(f"    {d.line()}" for d in newest)
        metadata["latest"] = MetadataValue.md(
            f"Newest dead letters of this tick (`streamplane dlq tail` prints more):\n\n{body}"
        )
    return AssetObservation(asset_key=DEAD_LETTERS, metadata=metadata)
