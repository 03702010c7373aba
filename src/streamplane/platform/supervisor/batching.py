"""Turns consumed records into tasks, bounded by count, bytes and linger time.

A task never spans partitions. Unordered, records are grouped per (tenant, partition), so
a task is one tenant's and fairness is exact. In ORDERING=key|partition records are
grouped per lane whatever their tenant (a lane is a partition, or a partition's keys
hashed into KEY_LANES), because a lane's tasks must follow input order; such a task
may mix tenants and carries a per-record tenant column. One credit is one task, so this
is where per-message gRPC cost is amortised over hundreds of records.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from streamplane.config import Ordering
from streamplane.platform.records import Records
from streamplane.platform.supervisor.offsets import OffsetTracker
from streamplane.platform.supervisor.tasks import Task, TopicPartition, new_task_id
from streamplane.platform.tenants import Headers, tenant_of

# Key mode spreads a partition's keys over this many lanes: enough parallelism for a
# handful of workers per partition, few enough that lanes still fill whole tasks.
KEY_LANES = 16

__all__ = ["KEY_LANES", "Batcher", "tenant_of"]


@dataclass(slots=True)
class _Open:
    task: Task
    opened: float


class Batcher:
    """Open batches per slot; closes them into Tasks and hands them to `emit`."""

    def __init__(
        self,
        *,
        ordering: Ordering,
        max_records: int,
        max_bytes: int,
        linger_s: float,
        id_prefix: str,
        emit: Callable[[Task], None],
    ) -> None:
        self._ordering = ordering
        self._max_records = max_records
        self._max_bytes = max_bytes
        self._linger_s = linger_s
        self._prefix = id_prefix
        self._emit = emit
        self._open: dict[tuple[str | None, TopicPartition, Hashable], _Open] = {}

    def add(
        self,
        tp: TopicPartition,
        tracker: OffsetTracker,
        offset: int,
        key: bytes | None,
        value: bytes,
        headers: Headers,
        timestamp_ms: int,
        now: float,
    ) -> None:
        """Add one consumed record; emits a task when its batch is full."""
        tenant = tenant_of(value, headers)
        lane = self._lane(tp, key)
        slot = (tenant if lane is None else None, tp, lane)
        current = self._open.get(slot)
        if current is not None and (
            current.task.tracker is not tracker
            or current.task.nbytes + len(value) > self._max_bytes
        ):
            # Close the batch before this record would overflow it: max_bytes bounds what
            # a task carries (it must fit a gRPC message). A record bigger than max_bytes
            # on its own still travels, alone.
            del self._open[slot]
            if current.task.tracker is tracker:
                self._emit(current.task)
            current = None
        if current is None:
            current = self._open[slot] = _Open(self._new_task(tenant, tp, lane, tracker), now)
        task = current.task
        records = task.records
        if headers:
            records.headers[len(records.offsets)] = [(k, v or b"") for k, v in headers]
        records.offsets.append(offset)
        records.timestamps_ms.append(timestamp_ms)
        records.keys.append(key)
        records.values.append(value)
        if lane is not None:
            records.tenants.append(tenant)
        task.nbytes += len(value)
        if len(records.offsets) >= self._max_records or task.nbytes >= self._max_bytes:
            del self._open[slot]
            self._emit(task)

    def flush_due(self, now: float, force: bool = False, limit: int | None = None) -> int:
        """Close batches that have lingered long enough, oldest first; returns how many.

        `limit` caps how many close: the source closes only as many as workers have idle
        credit for, so while every worker is busy batches keep growing instead of
        queueing as many small tasks (one credit moves one task, whatever its size).
        """
        deadline = now - self._linger_s
        due = [s for s, o in self._open.items() if force or o.opened <= deadline]
        if limit is not None and len(due) > limit:
            # dicts keep insertion order, and a slot is inserted when its batch opens.
            due = due[:limit]
        for slot in due:
            self._emit(self._open.pop(slot).task)
        return len(due)

    def drop_partitions(self, tps: set[TopicPartition]) -> int:
        """Forget open batches of revoked partitions; returns the records dropped."""
        gone = [s for s in self._open if s[1] in tps]
        return sum(self._open.pop(s).task.size for s in gone)

    @property
    def open_records(self) -> int:
        """Records waiting in open batches."""
        return sum(o.task.size for o in self._open.values())

    def _lane(self, tp: TopicPartition, key: bytes | None) -> Hashable | None:
        if self._ordering == "unordered":
            return None
        if self._ordering == "partition" or key is None:
            return tp
        return (tp, zlib.crc32(key) % KEY_LANES)

    def _new_task(
        self, tenant: str, tp: TopicPartition, lane: Hashable | None, tracker: OffsetTracker
    ) -> Task:
        return Task(
            task_id=new_task_id(self._prefix),
            tenant=tenant,
            tp=tp,
            lane=lane,
            records=Records(tp[0], tp[1]),
            tracker=tracker,
        )
