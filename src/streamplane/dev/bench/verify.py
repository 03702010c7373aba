"""Verification: every output and dead-letter record matched to its input, and latency.

An output record names its input by its sp-src-* headers; inputs never seen are lost,
inputs seen twice are duplicates. A byte per input record keeps a million in 1 MB.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import orjson

from streamplane.dev.bench.exceptions import BenchError
from streamplane.dev.bench.limits import STALL_TIMEOUT_S
from streamplane.dev.bench.percentiles import percentile
from streamplane.platform import headers as h

if TYPE_CHECKING:
    from tqdm import tqdm

    from streamplane.dev.bench.routes import Route
    from streamplane.dev.bench.visibility import VisibilityTail
    from streamplane.platform.kafka.consumer import GroupConsumer

__all__ = ["LatencyResult", "Tally", "percentile", "read_until"]


@dataclass(slots=True)
class Tally:
    """How often each input record (partition, offset) shows up in a run's outputs."""

    topic: str
    seen: dict[int, bytearray]
    records: int = 0
    unexpected: int = 0

    @classmethod
    def expecting(cls, topic: str, ends: Mapping[int, int]) -> Tally:
        """A tally for a fresh topic whose partitions hold offsets 0 .. end-1."""
        return cls(topic, {partition: bytearray(end) for partition, end in ends.items()})

    def visit(self, message: Any) -> None:
        """Count the input record that `message` (an output or DLQ record) came from."""
        found = dict(message.headers() or ())
        try:
            topic = found[h.SRC_TOPIC].decode()
            seen = self.seen[int(found[h.SRC_PARTITION])]
            offset = int(found[h.SRC_OFFSET])
        except (KeyError, ValueError, AttributeError):
            self.unexpected += 1
            return
        if topic != self.topic or not 0 <= offset < len(seen):
            self.unexpected += 1
            return
        self.records += 1
        # A byte per record keeps 1M inputs in 1 MB; it saturates, `records` does not.
        seen[offset] = min(seen[offset] + 1, 255)

    @property
    def lost(self) -> int:
        """Input records no output or dead-letter record came from."""
        return sum(counts.count(0) for counts in self.seen.values())

    @property
    def duplicates(self) -> int:
        """Output and dead-letter records beyond the first for their input."""
        inputs = sum(len(counts) for counts in self.seen.values())
        return self.records - (inputs - self.lost)


@dataclass(slots=True)
class LatencyResult:
    """Latencies of the records of the latency run, and its tally."""

    rate: float
    count: int
    drain_s: float
    route: Route
    tally: Tally
    # Records of the warm-up (their input written before this) count in the tally only.
    measured_from_ms: int = 0
    warmup_records: int = 0
    latencies_ms: list[int] = field(default_factory=list)
    # Median age of a record at each stage of the pipeline, in stage order (stages.py).
    stage_p50_ms: dict[str, float | None] = field(default_factory=dict)
    # The read_committed tail of the run, when it had one (exactly_once).
    visibility: VisibilityTail | None = None

    def visit(self, message: Any) -> None:
        """Take one output record's latency and count it in the tally."""
        self.tally.visit(message)
        _, written_ms = message.timestamp()
        source_ms = orjson.loads(message.value())["src_timestamp_ms"]
        if source_ms >= self.measured_from_ms:
            self.latencies_ms.append(written_ms - source_ms)

    def figures(self) -> dict[str, float | int | dict[str, float | None] | None]:
        """The latency figures of the report."""
        ordered = sorted(self.latencies_ms)
        return {
            "latency_rate_msgs_per_s": round(self.rate, 1),
            "latency_records": self.count,
            "latency_warmup_records": self.warmup_records,
            "latency_drain_s": round(self.drain_s, 3),
            "latency_p50_ms": percentile(ordered, 50),
            "latency_p90_ms": percentile(ordered, 90),
            "latency_p99_ms": percentile(ordered, 99),
            "latency_max_ms": ordered[-1] if ordered else None,
            "latency_stage_p50_ms": self.stage_p50_ms,
        }


def read_until(
    consumer: GroupConsumer,
    ends: Mapping[int, int],
    visit: Callable[[Any], None],
    bar: tqdm[NoReturn],
) -> None:
    """Consume assigned partitions until each reaches its end offset.

    A transactional topic's end offset lies past its last record (the commit marker),
    so a partition also counts as read when the consumer reports its end there (the
    consumer needs ``enable.partition.eof``).
    """
    remaining = dict(ends)
    idle_since = time.monotonic()

    def at_end(partition: int, offset: int) -> None:
        if offset >= remaining.get(partition, math.inf):
            remaining.pop(partition, None)

    while remaining:
        messages = consumer.consume(10_000, 0.5, on_eof=at_end)
        if not messages and time.monotonic() - idle_since > STALL_TIMEOUT_S:
            raise BenchError(f"reading back stalled with partitions {sorted(remaining)} unread")
        for message in messages:
            visit(message)
            partition = message.partition()
            if message.offset() + 1 >= remaining.get(partition, math.inf):
                del remaining[partition]
        if messages:
            bar.update(len(messages))
            idle_since = time.monotonic()
