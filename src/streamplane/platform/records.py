"""A task's records, packed for the wire, and unpacked for processors.

Per-record protobuf messages cost the supervisor several microseconds per record to
build (measured: ~6.5 us with keyword construction, ~2.6 us with attribute sets, on a
2-core machine), more than everything else it does with a record. So a task carries its
records as columns: offsets and timestamps as packed integers, values and keys each
concatenated into one bytes field with a size list. Building that is a few C-level
joins per task; see proto/streamplane/runner/v1/runner.proto, RecordBatch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import accumulate

from streamplane.runner.v1 import runner_pb2

NO_KEY = -1

HeaderTuple = tuple[str, bytes]


@dataclass(slots=True)
class Records:
    """The records of one partition, as columns; index i is one record."""

    topic: str
    partition: int
    offsets: list[int] = field(default_factory=list)
    timestamps_ms: list[int] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)
    # Sparse: most records have no headers, so only those that do are listed.
    headers: dict[int, list[HeaderTuple]] = field(default_factory=dict)
    # Per-record tenants; empty when every record belongs to the task's tenant.
    tenants: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.offsets)

    def slice(self, start: int, stop: int) -> Records:
        """Records [start, stop) as a new batch."""
        return Records(
            self.topic,
            self.partition,
            self.offsets[start:stop],
            self.timestamps_ms[start:stop],
            self.keys[start:stop],
            self.values[start:stop],
            {i - start: h for i, h in self.headers.items() if start <= i < stop},
            self.tenants[start:stop],
        )

    def select(self, indices: list[int]) -> Records:
        """The records at `indices` (ascending), as a new batch."""
        where = {old: new for new, old in enumerate(indices)}
        return Records(
            self.topic,
            self.partition,
            [self.offsets[i] for i in indices],
            [self.timestamps_ms[i] for i in indices],
            [self.keys[i] for i in indices],
            [self.values[i] for i in indices],
            {where[i]: h for i, h in self.headers.items() if i in where},
            [self.tenants[i] for i in indices] if self.tenants else [],
        )

    def sole_tenant(self) -> str | None:
        """The tenant of every record when the tenant column names only one, else None."""
        tenants = self.tenants
        if tenants and tenants.count(tenants[0]) == len(tenants):
            return tenants[0]
        return None

    def headers_of(self, index: int) -> list[HeaderTuple]:
        """The input headers of record `index` (empty list when none)."""
        return self.headers.get(index, [])


def pack(records: Records, batch: runner_pb2.RecordBatch) -> None:
    """Write `records` into an empty RecordBatch message."""
    batch.topic = records.topic
    batch.partition = records.partition
    batch.offsets.extend(records.offsets)
    batch.timestamps_ms.extend(records.timestamps_ms)
    values = records.values
    batch.values = b"".join(values)
    batch.value_sizes.extend(map(len, values))
    keys = records.keys
    batch.keys = b"".join(k for k in keys if k)
    batch.key_sizes.extend(NO_KEY if k is None else len(k) for k in keys)
    for index, pairs in records.headers.items():
        for key, value in pairs:
            batch.headers.add(index=index, key=key, value=value)
    # A column naming one tenant travels as the task's tenant instead (`Task.to_message`).
    if records.tenants and records.sole_tenant() is None:
        batch.tenants.extend(records.tenants)


def unpack(batch: runner_pb2.RecordBatch) -> Records:
    """The Records a RecordBatch carries; raises ValueError if its columns disagree."""
    n = len(batch.offsets)
    if not (len(batch.timestamps_ms) == len(batch.value_sizes) == len(batch.key_sizes) == n):
        raise ValueError("record batch columns have different lengths")
    values = _split(batch.values, list(batch.value_sizes))
    key_sizes = list(batch.key_sizes)
    if key_sizes and min(key_sizes) < NO_KEY:
        # -1 is "no key"; any other negative size means nothing, and read as an empty
        # key it would silently turn a record's key into b"".
        raise ValueError(f"record batch key size {min(key_sizes)} is negative")
    key_blob = _split(batch.keys, [max(s, 0) for s in key_sizes])
    keys: list[bytes | None] = [
        None if s == NO_KEY else k for s, k in zip(key_sizes, key_blob, strict=True)
    ]
    if batch.tenants and len(batch.tenants) != n:
        raise ValueError("record batch tenants column has the wrong length")
    headers: dict[int, list[HeaderTuple]] = {}
    for h in batch.headers:
        if h.index >= n:
            raise ValueError(f"header for record {h.index} of {n}")
        headers.setdefault(h.index, []).append((h.key, h.value))
    return Records(
        batch.topic,
        batch.partition,
        list(batch.offsets),
        list(batch.timestamps_ms),
        keys,
        values,
        headers,
        list(batch.tenants),
    )


def _split(blob: bytes, sizes: list[int]) -> list[bytes]:
    ends = list(accumulate(sizes))
    if (ends[-1] if ends else 0) != len(blob):
        raise ValueError("record batch sizes do not match its bytes")
    starts = [0, *ends]
    return [blob[a:b] for a, b in zip(starts, ends, strict=False)]
