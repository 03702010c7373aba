"""Turns consumed records into tasks, bounded by count, bytes and linger time.

Records are grouped per (tenant, partition, lane): a task never spans partitions, and in
ORDERING=key mode records whose keys hash to the same lane share tasks, so per-key order
is the lane's order. One credit is one task, so this is where per-message gRPC cost is
amortised over hundreds of records.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from streamplane.config import Ordering
from streamplane.platform.headers import DEFAULT_TENANT, TENANT_INPUT
from streamplane.platform.supervisor.offsets import OffsetTracker
from streamplane.platform.supervisor.tasks import Task, TopicPartition, new_task_id
from streamplane.runner.v1 import runner_pb2

# Key mode spreads a partition's keys over this many lanes: enough parallelism for a
# handful of workers per partition, few enough that lanes still fill whole tasks.
KEY_LANES = 16

# A tenant name longer than this is not a tenant, it is payload: cut it.
MAX_TENANT_LEN = 64

# Finds "tenant": "<name>" without parsing the whole JSON value: a full parse per record
# would cost more than everything else the supervisor does with it.
_TENANT_IN_JSON = re.compile(rb'"tenant"\s*:\s*"([^"\\]{1,64})"')

Headers = list[tuple[str, bytes | None]] | None


def tenant_of(value: bytes | None, headers: Headers) -> str:
    """Tenant from the `tenant` header, else the JSON payload's `tenant`, else default."""
    if headers:
        for key, raw in headers:
            if key == TENANT_INPUT and raw:
                return raw.decode("utf-8", "replace")[:MAX_TENANT_LEN]
    if value:
        match = _TENANT_IN_JSON.search(value)
        if match:
            return match.group(1).decode("utf-8", "replace")
    return DEFAULT_TENANT


@dataclass(slots=True)
class _Open:
    task: Task
    opened: float


class Batcher:
    """Open batches per (tenant, partition, lane); closes them into Tasks."""

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
        self._open: dict[tuple[str, TopicPartition, Hashable], _Open] = {}

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
        slot = (tenant, tp, lane)
        current = self._open.get(slot)
        if current is None or current.task.tracker is not tracker:
            current = self._open[slot] = _Open(self._new_task(tenant, tp, lane, tracker), now)
        task = current.task
        record = task.message.task.records.add(
            topic=tp[0],
            partition=tp[1],
            offset=offset,
            value=value,
            timestamp_ms=timestamp_ms,
        )
        if key is not None:
            record.key = key
            record.has_key = True
        if headers:
            for hkey, hval in headers:
                record.headers.add(key=hkey, value=hval or b"")
        task.offsets.append(offset)
        task.nbytes += len(value)
        if len(task.offsets) >= self._max_records or task.nbytes >= self._max_bytes:
            del self._open[slot]
            self._emit(task)

    def flush_due(self, now: float, force: bool = False) -> None:
        """Close every batch that has lingered long enough (or all, when forced)."""
        deadline = now - self._linger_s
        due = [s for s, o in self._open.items() if force or o.opened <= deadline]
        for slot in due:
            self._emit(self._open.pop(slot).task)

    def drop_partitions(self, tps: set[TopicPartition]) -> int:
        """Forget open batches of revoked partitions; returns the records dropped."""
        gone = [s for s in self._open if s[1] in tps]
        return sum(len(self._open.pop(s).task.offsets) for s in gone)

    @property
    def open_records(self) -> int:
        """Records waiting in open batches."""
        return sum(len(o.task.offsets) for o in self._open.values())

    def _lane(self, tp: TopicPartition, key: bytes | None) -> Hashable | None:
        if self._ordering == "unordered":
            return None
        if self._ordering == "partition" or key is None:
            return tp
        return (tp, zlib.crc32(key) % KEY_LANES)

    def _new_task(
        self, tenant: str, tp: TopicPartition, lane: Hashable | None, tracker: OffsetTracker
    ) -> Task:
        message = runner_pb2.SupervisorMessage()
        task_id = new_task_id(self._prefix)
        message.task.task_id = task_id
        message.task.tenant = tenant
        message.task.attempt = 1
        return Task(
            task_id=task_id,
            tenant=tenant,
            tp=tp,
            lane=lane,
            message=message,
            offsets=[],
            nbytes=0,
            tracker=tracker,
        )
