"""Tenant-fair, order-preserving queues of ready tasks.

Deficit round-robin across tenants (cost = records), so one tenant's backlog cannot starve
another. Tasks live in lanes: a lane hands out one task at a time and keeps its order
across redeliveries and bisections, which is how ORDERING=key|partition is kept. Lanes
are global, not per tenant: a key's records stay in order even when tenants share it.
A lane is served through the tenant of its head task; an unordered task is a lane of
its own, so any number of them may be in flight.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field

from streamplane.platform.supervisor.tasks import Task, TopicPartition


@dataclass(slots=True)
class _Tenant:
    name: str
    # Lanes whose head task is this tenant's and may be handed out now.
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
        self._lanes: dict[Hashable, deque[Task]] = {}
        self._active: deque[_Tenant] = deque()
        self._busy: set[Hashable] = set()
        self._delayed: list[tuple[float, int, Hashable]] = []
        self._seq = itertools.count()
        self.queued_tasks = 0
        self.queued_records = 0

    # -- adding ---------------------------------------------------------------------
    def push(self, task: Task) -> None:
        """Queue a task at the back of its lane."""
        lane = self._lanes.setdefault(task.lane_id, deque())
        lane.append(task)
        self._count(task, +1)
        if len(lane) == 1:
            self._lane_ready(task.lane_id, now=None)

    def release(self, task: Task, requeue: bool, now: float) -> None:
        """The task left its worker: free its lane and, if asked, queue it at the front."""
        self.replace(task, [task] if requeue else [], now)

    def replace(self, task: Task, parts: Iterable[Task], now: float) -> None:
        """Free a task's lane and queue `parts`, in order, at the front of their lanes.

        Parts of an ordered task share its lane; parts of an unordered task are lanes of
        their own (their lane id is their own task id).
        """
        self._busy.discard(task.lane_id)
        if not self._lanes.get(task.lane_id, True):
            del self._lanes[task.lane_id]
        lane_ids: list[Hashable] = []
        for part in reversed(list(parts)):
            self._lanes.setdefault(part.lane_id, deque()).appendleft(part)
            self._count(part, +1)
            if part.lane_id not in lane_ids:
                lane_ids.append(part.lane_id)
        if task.lane_id in self._lanes and task.lane_id not in lane_ids:
            lane_ids.append(task.lane_id)
        # Readied back to front, so the first part's lane ends up first in line.
        for lane_id in lane_ids:
            self._lane_ready(lane_id, now, front=True)

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
            if self._head(tenant) is None:
                active.popleft()
                self._deactivate(tenant)
            return task
        return None

    def drop_partitions(self, tps: set[TopicPartition]) -> list[Task]:
        """Remove every queued task of these partitions (on revoke); return them."""
        dropped: list[Task] = []
        for lane_id in list(self._lanes):
            lane = self._lanes[lane_id]
            gone = [t for t in lane if t.tp in tps]
            if not gone:
                continue
            for t in gone:
                self._count(t, -1)
            dropped.extend(gone)
            kept = deque(t for t in lane if t.tp not in tps)
            if kept:
                self._lanes[lane_id] = kept
                self._lane_ready(lane_id, now=None)
            else:
                del self._lanes[lane_id]
        return dropped

    def tenant_backlog(self) -> dict[str, int]:
        """Queued records per tenant."""
        backlog: dict[str, int] = dict.fromkeys(self._tenants, 0)
        for task in self.queued():
            backlog[task.tenant] = backlog.get(task.tenant, 0) + task.size
        return backlog

    def queued(self) -> Iterator[Task]:
        """Every queued task (delayed ones included), lane by lane."""
        for lane in self._lanes.values():
            yield from lane

    def next_due(self) -> float | None:
        """When the earliest delayed (backing-off) task becomes eligible."""
        return self._delayed[0][0] if self._delayed else None

    # -- internals ------------------------------------------------------------------
    def _tenant(self, name: str) -> _Tenant:
        tenant = self._tenants.get(name)
        if tenant is None:
            tenant = self._tenants[name] = _Tenant(name)
        return tenant

    def _count(self, task: Task, sign: int) -> None:
        self.queued_tasks += sign
        self.queued_records += sign * task.size

    def _lane_ready(self, lane_id: Hashable, now: float | None, front: bool = False) -> None:
        """Offer the lane's head to its tenant, unless busy or backing off."""
        lane = self._lanes.get(lane_id)
        if not lane or lane_id in self._busy:
            return
        head = lane[0]
        if head.not_before:
            # A head that backs off (RETRY) holds its whole lane until it is due.
            if now is None or head.not_before > now:
                heapq.heappush(self._delayed, (head.not_before, next(self._seq), lane_id))
                return
            head.not_before = 0.0
        tenant = self._tenant(head.tenant)
        # A lane may be listed twice (say, after a revoke); `_head` skips stale entries.
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
            _, _, lane_id = heapq.heappop(delayed)
            if self._lanes.get(lane_id):
                self._lane_ready(lane_id, now, front=True)

    def _head(self, tenant: _Tenant) -> Task | None:
        """The tenant's first servable task; drops stale entries from its ready list."""
        while tenant.ready:
            lane_id = tenant.ready[0]
            lane = self._lanes.get(lane_id)
            if lane and lane_id not in self._busy and lane[0].tenant == tenant.name:
                return lane[0]
            tenant.ready.popleft()
        return None

    def _take(self, tenant: _Tenant, task: Task) -> None:
        lane_id = tenant.ready.popleft()
        lane = self._lanes[lane_id]
        lane.popleft()
        self._count(task, -1)
        if not lane:
            del self._lanes[lane_id]
        self._busy.add(lane_id)

    def _deactivate(self, tenant: _Tenant) -> None:
        tenant.active = False
        tenant.granted = False
        tenant.deficit = 0
        if not tenant.ready:
            # A tenant with nothing queued is forgotten: with many tenants the table
            # would otherwise only grow. It comes back, fresh, with its next task.
            self._tenants.pop(tenant.name, None)
