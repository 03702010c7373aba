"""Turns consumed records into tasks, bounded by count, bytes and linger time.

A task never spans partitions. Unordered, records are grouped per (tenant, partition)
while tasks wait for workers, so a task is one tenant's and fairness is exact; while none
wait (`contended` says so), a partition's tenants share one batch, since fairness has
nothing to divide then and a third as many open batches close three times as often
(latency at half load: p50 halved in the bench). In ORDERING=key|partition records are
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
# Unordered batches are per (tenant, partition); past this many open at once, records of
# tenants without an open batch share one batch per partition (a per-record tenant column
# keeps each record's tenant). With 200k tenants one batch each meant tasks of one record
# and a table the supervisor scanned on every loop; the long tail now shares fairness as
# one bucket while busy tenants keep batches (and fair shares) of their own.
MAX_OPEN_BATCHES = 4096
# Even under the cap, a table of one-record batches is the 200k-tenant collapse again
# (every closed slot reopens for the next new tenant): with more distinct tenants than
# FEW_TENANTS in a window, only tenants with BUSY_RECORDS records in it (or the one
# before) open batches of their own; the rest share. A few tenants always get their own.
FEW_TENANTS = 64
BUSY_RECORDS = 16
TENANT_WINDOW_S = 1.0
# A window's tenant table never holds more than this (it rolls over early).
MAX_WINDOW_TENANTS = 100_000
# The shared batch's tenant in the fair scheduler: the long tail of tenants as one.
MANY_TENANTS = "*"
_SHARED = "shared"

__all__ = [
    "BUSY_RECORDS",
    "FEW_TENANTS",
    "KEY_LANES",
    "MANY_TENANTS",
    "MAX_OPEN_BATCHES",
    "Batcher",
    "tenant_of",
]


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
        max_age_s: float | None = None,
        max_open: int = MAX_OPEN_BATCHES,
        contended: Callable[[], bool] | None = None,
    ) -> None:
        """`contended`: whether closed tasks wait for a worker; None means always."""
        self._ordering = ordering
        self._max_records = max_records
        self._max_bytes = max_bytes
        self._linger_s = linger_s
        self._max_age_s = max_age_s
        self._max_open = max_open
        self._prefix = id_prefix
        self._emit = emit
        self._contended = contended
        self._open: dict[tuple[str | None, TopicPartition, Hashable], _Open] = {}
        # Records per tenant in this window and the one before (unordered mode).
        self._seen: dict[str, int] = {}
        self._before: dict[str, int] = {}
        self._window_start = 0.0

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
        shared = False
        if lane is None:
            seen = self._seen
            seen[tenant] = seen.get(tenant, 0) + 1
            if current is None and (
                len(self._open) >= self._max_open
                or not self._may_open(tenant)
                or not self._is_contended()
            ):
                slot, shared = (None, tp, _SHARED), True
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
            owner = MANY_TENANTS if shared else tenant
            current = self._open[slot] = _Open(self._new_task(owner, tp, lane, tracker), now)
        task = current.task
        records = task.records
        if headers:
            records.headers[len(records.offsets)] = [(k, v or b"") for k, v in headers]
        records.offsets.append(offset)
        records.timestamps_ms.append(timestamp_ms)
        records.keys.append(key)
        records.values.append(value)
        if lane is not None or slot[2] == _SHARED:
            records.tenants.append(tenant)
        task.nbytes += len(value)
        if len(records.offsets) >= self._max_records or task.nbytes >= self._max_bytes:
            del self._open[slot]
            self._emit(task)

    def _is_contended(self) -> bool:
        return self._contended is None or self._contended()

    def _roll_window(self, now: float) -> None:
        # Once per source loop, not per record: between two loops at most one consume
        # batch of records lands, so the table stays bounded all the same.
        if now - self._window_start >= TENANT_WINDOW_S or len(self._seen) >= MAX_WINDOW_TENANTS:
            self._before, self._seen, self._window_start = self._seen, {}, now

    def _may_open(self, tenant: str) -> bool:
        """Whether a tenant without an open batch gets one of its own."""
        if max(len(self._seen), len(self._before)) <= FEW_TENANTS:
            return True
        return max(self._seen.get(tenant, 0), self._before.get(tenant, 0)) >= BUSY_RECORDS

    def flush_due(
        self, now: float, force: bool = False, limit: int | None = None, eager: bool = False
    ) -> int:
        """Close batches that have lingered long enough, oldest first; returns how many.

        `eager` closes them without waiting out the linger (the input has caught up).

        `limit` caps how many close: the source closes only as many as workers have idle
        credit for, so while every worker is busy batches keep growing instead of
        queueing as many small tasks (one credit moves one task, whatever its size).
        Batches older than `max_age_s` close whatever `limit` says: a rare tenant's
        batch under a backlog would otherwise hold its partition's lowest outstanding
        offset, and so the committed offset, for as long as the backlog lasts.
        """
        opened_by = now if eager else now - self._linger_s
        return self._close_older(opened_by, limit, force) + self.flush_stale(now)

    def flush_stale(self, now: float) -> int:
        """Close every batch older than `max_age_s`; returns how many."""
        self._roll_window(now)
        if self._max_age_s is None:
            return 0
        return self._close_older(now - self._max_age_s, None, False)

    def _close_older(self, opened_by: float, limit: int | None, force: bool) -> int:
        # dicts keep insertion order, and a slot is inserted when its batch opens (with a
        # non-decreasing clock): the scan stops at the first batch too young to close.
        due: list[tuple[str | None, TopicPartition, Hashable]] = []
        for slot, batch in self._open.items():
            if (limit is not None and len(due) >= limit) or not (
                force or batch.opened <= opened_by
            ):
                break
            due.append(slot)
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
