"""Audit OUTPUT_TOPIC and the dead-letter topic against the input, by sp-src-* headers.

Every output or dead-letter record names its source (`sp-src-topic`, `sp-src-partition`,
`sp-src-offset`). The audit maps each back to its input record and reports what a
streaming platform must account for: input records found nowhere (lost), records written
more than once (duplicates: allowed only after a failure), which records went to the
dead-letter topic and why, records that name no input (bogus), and per-key order.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import orjson

from streamplane.platform import headers as h
from streamplane.testing.topics import ReadRecord, read_all

Source = tuple[int, int]
"""An input record's (partition, offset)."""

DEMO_FIELDS = ("event_id", "tenant", "user_id", "event_type", "value", "ts")


def source_of(record: ReadRecord, input_topic: str) -> Source | None:
    """The (partition, offset) an output record came from, or None if it names no input."""
    try:
        topic = record.headers[h.SRC_TOPIC].decode()
        partition = int(record.headers[h.SRC_PARTITION])
        offset = int(record.headers[h.SRC_OFFSET])
    except (KeyError, ValueError):
        return None
    if topic != input_topic:
        return None
    return (partition, offset)


def is_malformed_demo(value: bytes | None) -> bool:
    """Whether a demo event fails to parse or breaks the schema (an independent oracle).

    Valid: a JSON object with every field of DESIGN's demo event, `value` a number,
    `ts` an integer, string ids (`skill` optional).
    """
    if value is None:
        return True
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError:
        return True
    if not isinstance(event, dict) or any(name not in event for name in DEMO_FIELDS):
        return True
    number = event["value"]
    if isinstance(number, bool) or not isinstance(number, int | float):
        return True
    if isinstance(event["ts"], bool) or not isinstance(event["ts"], int):
        return True
    return not all(isinstance(event[k], str) for k in ("event_id", "tenant", "user_id"))


@dataclass
class Audit:
    """What happened to each input record."""

    input_topic: str
    inputs: dict[Source, ReadRecord]
    outputs: list[ReadRecord]
    dead: list[ReadRecord]
    # How many times each input shows up in the output / dead-letter topic.
    out_count: Counter[Source] = field(default_factory=Counter)
    dlq_count: Counter[Source] = field(default_factory=Counter)
    bogus: list[ReadRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        for record in self.outputs:
            src = source_of(record, self.input_topic)
            if src is None or src not in self.inputs:
                self.bogus.append(record)
            else:
                self.out_count[src] += 1
        for record in self.dead:
            src = source_of(record, self.input_topic)
            if src is None or src not in self.inputs:
                self.bogus.append(record)
            else:
                self.dlq_count[src] += 1

    # -- the invariants ---------------------------------------------------------------
    @property
    def lost(self) -> list[Source]:
        """Input records in neither the output nor the dead-letter topic."""
        return sorted(s for s in self.inputs if not self.out_count[s] and not self.dlq_count[s])

    @property
    def duplicates(self) -> int:
        """Extra copies: every appearance beyond the first of a record, in either topic."""
        seen = self.out_count + self.dlq_count
        return sum(n - 1 for n in seen.values() if n > 1)

    @property
    def dead_lettered(self) -> set[Source]:
        """Input records that reached the dead-letter topic."""
        return set(self.dlq_count)

    @property
    def in_both(self) -> set[Source]:
        """Records in the output topic and in the dead-letter topic."""
        return set(self.out_count) & set(self.dlq_count)

    def dead_letters_of(self, src: Source) -> list[ReadRecord]:
        return [r for r in self.dead if source_of(r, self.input_topic) == src]

    def key_order_violations(self, limit: int = 10) -> list[str]:
        """Keys whose output order (first copy of each record) differs from input order.

        Output records of a key are taken in the order the output topic holds them
        (one key lands in one output partition); a redelivered duplicate is skipped,
        since at-least-once may repeat a record but must not reorder first copies.
        Dead-lettered records are left out of both sides.
        """
        expected: dict[bytes | None, list[Source]] = defaultdict(list)
        for src in sorted(self.inputs):
            if src in self.out_count:
                expected[self.inputs[src].key].append(src)
        for sequence in expected.values():
            sequence.sort(key=lambda s: s[1])
        got: dict[bytes | None, list[Source]] = defaultdict(list)
        firsts: set[Source] = set()
        for record in sorted(self.outputs, key=lambda r: (r.partition, r.offset)):
            first = source_of(record, self.input_topic)
            if first is None or first not in self.inputs or first in firsts:
                continue
            firsts.add(first)
            got[self.inputs[first].key].append(first)
        problems = []
        for key, sequence in expected.items():
            if got.get(key) != sequence:
                problems.append(
                    f"key {key!r}: input {sequence[:8]}... output {got.get(key, [])[:8]}"
                )
                if len(problems) >= limit:
                    break
        return problems

    def key_regressions(self) -> int:
        """Times a key's output (all copies, in topic order) goes back to an earlier offset."""
        last: dict[bytes | None, int] = {}
        regressions = 0
        for record in sorted(self.outputs, key=lambda r: (r.partition, r.offset)):
            src = source_of(record, self.input_topic)
            if src is None or src not in self.inputs:
                continue
            key = self.inputs[src].key
            if key in last and src[1] < last[key]:
                regressions += 1
            last[key] = src[1]
        return regressions

    def summary(self) -> str:
        return (
            f"inputs={len(self.inputs)} outputs={len(self.outputs)} dead={len(self.dead)} "
            f"lost={len(self.lost)} duplicates={self.duplicates} bogus={len(self.bogus)} "
            f"dead_lettered={len(self.dead_lettered)} in_both={len(self.in_both)} "
            f"first_lost={self.lost[:5]}"
        )


def audit_topics(bootstrap: str, input_topic: str, output_topic: str, dlq_topic: str) -> Audit:
    """Read the input, output and dead-letter topics in full and audit them."""
    inputs = {(r.partition, r.offset): r for r in read_all(bootstrap, input_topic)}
    return Audit(
        input_topic=input_topic,
        inputs=inputs,
        outputs=read_all(bootstrap, output_topic),
        dead=read_all(bootstrap, dlq_topic),
    )


def uncovered_below(
    committed: Mapping[int, int], outputs: Iterable[ReadRecord], input_topic: str
) -> dict[int, list[int]]:
    """Offsets below each partition's committed offset found in no output record.

    Input offsets of a plain (non-transactional, non-compacted) topic are contiguous
    from 0, so this checks the no-loss rule without reading the input: a committed
    offset must never pass a record that is not written. Returns up to 10 per partition.
    """
    seen: dict[int, set[int]] = defaultdict(set)
    for record in outputs:
        src = source_of(record, input_topic)
        if src is not None:
            seen[src[0]].add(src[1])
    missing: dict[int, list[int]] = {}
    for partition, end in committed.items():
        have = seen[partition]
        gaps = [o for o in range(end) if o not in have]
        if gaps:
            missing[partition] = gaps[:10]
    return missing


def assert_committed_at_end(committed: Mapping[int, int], ends: Mapping[int, int]) -> None:
    """Every partition with records has its committed offset at its end offset."""
    behind = {
        p: (committed.get(p), end)
        for p, end in ends.items()
        if committed.get(p, 0 if end == 0 else None) != end
    }
    assert not behind, f"committed offsets short of the end (partition: (committed, end)): {behind}"


def assert_accounted(audit: Audit, count: int, bound: int, *, dead_allowed: bool = True) -> None:
    """All `count` inputs seen, none lost, nothing bogus, at most `bound` duplicates.

    With ``dead_allowed=False`` the inputs were valid events, so none may be a dead letter.
    """
    assert len(audit.inputs) == count, audit.summary()
    assert not audit.lost, audit.summary()
    assert not audit.bogus, audit.summary()
    if not dead_allowed:
        assert not audit.dead, "valid events only: nothing belongs in the DLQ"
    assert audit.duplicates <= bound, audit.summary()
