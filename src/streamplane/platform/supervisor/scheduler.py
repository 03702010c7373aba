"""Tenant-fair, order-preserving queues of ready tasks.

Deficit round-robin across tenants (cost = records), so one tenant's backlog cannot starve
another. Within a tenant, tasks live in lanes: a lane hands out one task at a time and
keeps its order across redeliveries, which is how ORDERING=key|partition is kept. An
unordered task is a lane of its own, so any number of them may be in flight.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from streamplane.platform.supervisor.tasks import Task, TopicPartition


@dataclass(slots=True)
class _Tenant:
    name: str
    lanes: dict[Hashable, deque[Task]] = field(default_factory=dict)
    ready: deque[Hashable] = field(default_factory=deque)
    deficit: int = 0
    granted: bool = False
    active: bool = False


class Scheduler:
    """Queues of tasks that wait for a worker, served fairly across tenants."""

    def __init__(self, quantum: int) -> None:
        if quantum < 1:
            raise ValueError("quantum must be at least 1")
        self._quantum = quantum
        self._tenants: dict[str, _Tenant] = {}
        self._active: deque[_Tenant] = deque()
        self._busy: set[tuple[str, Hashable]] = set()
        self._delayed: list[tuple[float, int, str, Hashable]] = []
        self._seq = itertools.count()
        self.queued_tasks = 0
        self.queued_records = 0

    # -- adding ---------------------------------------------------------------------
    def push(self, task: Task) -> None:
        """Queue a new task at the back of its lane."""
        tenant = self._tenant(task.tenant)
        lane = tenant.lanes.setdefault(task.lane_id, deque())
        lane.append(task)
        self._count(task, +1)
        if len(lane) == 1:
            self._lane_ready(tenant, task.lane_id, now=None)

    def release(self, task: Task, requeue: bool, now: float) -> None:
        """The task left its worker: free its lane and, if asked, queue it at the front."""
        tenant = self._tenant(task.tenant)
        lane_id = task.lane_id
        self._busy.discard((tenant.name, lane_id))
        lane = tenant.lanes.setdefault(lane_id, deque())
        if requeue:
            lane.appendleft(task)
            self._count(task, +1)
        if lane:
            self._lane_ready(tenant, lane_id, now, front=requeue)
        else:
            del tenant.lanes[lane_id]

    def replace(self, task: Task, parts: Iterable[Task], now: float) -> None:
        """Free a task's lane and queue its parts, in order, at the front of that lane."""
        tenant = self._tenant(task.tenant)
        self._busy.discard((tenant.name, task.lane_id))
        lane = tenant.lanes.setdefault(task.lane_id, deque())
        for part in reversed(list(parts)):
            lane.appendleft(part)
            self._count(part, +1)
        if lane:
            self._lane_ready(tenant, task.lane_id, now, front=True)

    # -- taking ---------------------------------------------------------------------
    def pop(self, now: float) -> Task | None:
        """The next task by deficit round-robin, or None; its lane becomes busy."""
        self._promote_due(now)
        active = self._active
        while active:
            tenant = active[0]
            task = self._head(tenant)
            if task is None:
                active.popleft()
                self._deactivate(tenant)
                continue
            if not tenant.granted:
                tenant.deficit += self._quantum
                tenant.granted = True
            if task.size > tenant.deficit:
                tenant.granted = False
                active.rotate(-1)
                continue
            tenant.deficit -= task.size
            self._take(tenant, task)
            if not tenant.ready:
                active.popleft()
                self._deactivate(tenant)
            return task
        return None

    def drop_partitions(self, tps: set[TopicPartition]) -> list[Task]:
        """Remove every queued task of these partitions (on revoke); return them."""
        dropped: list[Task] = []
        for tenant in self._tenants.values():
            for lane_id in list(tenant.lanes):
                lane = tenant.lanes[lane_id]
                kept = deque(t for t in lane if t.tp not in tps)
                gone = [t for t in lane if t.tp in tps]
                for t in gone:
                    self._count(t, -1)
                dropped.extend(gone)
                if kept:
                    tenant.lanes[lane_id] = kept
                else:
                    del tenant.lanes[lane_id]
            tenant.ready = deque(x for x in tenant.ready if x in tenant.lanes)
        return dropped

    def tenant_backlog(self) -> dict[str, int]:
        """Queued records per tenant."""
        return {
            name: sum(t.size for lane in tenant.lanes.values() for t in lane)
            for name, tenant in self._tenants.items()
        }

    # -- internals ------------------------------------------------------------------
    def _tenant(self, name: str) -> _Tenant:
        tenant = self._tenants.get(name)
        if tenant is None:
            tenant = self._tenants[name] = _Tenant(name)
        return tenant

    def _count(self, task: Task, sign: int) -> None:
        self.queued_tasks += sign
        self.queued_records += sign * task.size

    def _lane_ready(
        self, tenant: _Tenant, lane_id: Hashable, now: float | None, front: bool = False
    ) -> None:
        if (tenant.name, lane_id) in self._busy:
            return
        head = tenant.lanes[lane_id][0]
        # A head that backs off (RETRY) holds its whole lane until it is due.
        if head.not_before and (now is None or head.not_before > now):
            heapq.heappush(self._delayed, (head.not_before, next(self._seq), tenant.name, lane_id))
            return
        if front:
            tenant.ready.appendleft(lane_id)
        else:
            tenant.ready.append(lane_id)
        if not tenant.active:
            tenant.active = True
            self._active.append(tenant)

    def _promote_due(self, now: float) -> None:
        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            _, _, name, lane_id = heapq.heappop(delayed)
            tenant = self._tenants.get(name)
            if tenant is None or lane_id not in tenant.lanes or lane_id in tenant.ready:
                continue
            head = tenant.lanes[lane_id][0]
            if head.not_before <= now:
                head.not_before = 0.0
                self._lane_ready(tenant, lane_id, now, front=True)
            else:
                self._lane_ready(tenant, lane_id, now)

    def _head(self, tenant: _Tenant) -> Task | None:
        while tenant.ready:
            lane_id = tenant.ready[0]
            lane = tenant.lanes.get(lane_id)
            if lane and (tenant.name, lane_id) not in self._busy:
                return lane[0]
            tenant.ready.popleft()
        return None

    def _take(self, tenant: _Tenant, task: Task) -> None:
        lane_id = tenant.ready.popleft()
        lane = tenant.lanes[lane_id]
        lane.popleft()
        self._count(task, -1)
        if not lane:
            del tenant.lanes[lane_id]
        self._busy.add((tenant.name, lane_id))

    def _deactivate(self, tenant: _Tenant) -> None:
        tenant.active = False
        tenant.granted = False
        tenant.deficit = 0

    def next_due(self) -> float | None:
        """When the earliest delayed (backing-off) task becomes eligible."""
        return self._delayed[0][0] if self._delayed else None
