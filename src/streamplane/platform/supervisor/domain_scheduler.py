"""Per-domain task queues for mesh dispatch: a pinned tenant's tasks wait in its domain.

One fair `Scheduler` per mesh domain behind the dispatcher's task-queue interface: a task
waits in its tenant's domain (MESH_TENANT_DOMAIN_MAP, else MESH_PUBLISH_DOMAIN), and a
worker takes tasks only from the domains it serves (`Dispatcher` asks `pop_for`).
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Iterable, Iterator
from typing import Any

from streamplane.platform.mesh.routing import TenantDomains
from streamplane.platform.supervisor.scheduler import Scheduler
from streamplane.platform.supervisor.tasks import Task, TopicPartition


class DomainScheduler:
    """One fair `Scheduler` per domain, behind the dispatcher's task-queue interface.

    A task waits in its tenant's domain. A lane (ORDERING=key|partition) keeps the domain
    of its oldest held task until it holds none: its tasks must stay one at a time and in
    order, so order outranks a pin when one lane mixes tenants of different domains.
    """

    def __init__(self, quantum: int, tenants: TenantDomains) -> None:
        self._tenants = tenants
        self._schedulers = {d: Scheduler(quantum) for d in sorted(tenants.domains)}
        # lane id -> [domain, tasks held (queued, in flight or awaiting a DLQ write)]
        self._lanes: dict[Hashable, list[Any]] = {}
        self._turn = itertools.count()

    @property
    def queued_tasks(self) -> int:
        """Tasks waiting, all domains."""
        return sum(s.queued_tasks for s in self._schedulers.values())

    @property
    def queued_records(self) -> int:
        """Records waiting, all domains."""
        return sum(s.queued_records for s in self._schedulers.values())

    def domain_of(self, task: Task) -> str:
        """The domain the task is queued (or was dispatched) in."""
        held = self._lanes.get(task.lane_id)
        return str(held[0]) if held else self._tenants.domain_of(task.tenant)

    def push(self, task: Task) -> None:
        """Queue a task in its domain."""
        domain = self.domain_of(task)
        self._hold(task.lane_id, domain, 1)
        self._schedulers[domain].push(task)

    def pop(self, now: float) -> Task | None:
        """The next task of any domain."""
        return self.pop_for(self._schedulers.keys(), now)

    def pop_for(self, domains: Iterable[str], now: float) -> Task | None:
        """The next task of one of `domains`, taking turns between them."""
        served = [d for d in domains if d in self._schedulers]
        if not served:
            return None
        start = next(self._turn) % len(served)
        for domain in served[start:] + served[:start]:
            task = self._schedulers[domain].pop(now)
            if task is not None:
                return task
        return None

    def release(self, task: Task, requeue: bool, now: float) -> None:
        """The task left its worker; see `Scheduler.release`."""
        self._schedulers[self.domain_of(task)].release(task, requeue, now)
        if not requeue:
            self._hold(task.lane_id, "", -1)

    def replace(self, task: Task, parts: Iterable[Task], now: float) -> None:
        """Queue `parts` in the task's domain, at the front; see `Scheduler.replace`."""
        domain = self.domain_of(task)
        parts = list(parts)
        for part in parts:
            self._hold(part.lane_id, domain, 1)
        self._schedulers[domain].replace(task, parts, now)
        self._hold(task.lane_id, domain, -1)

    def drop_partitions(self, tps: set[TopicPartition]) -> list[Task]:
        """Remove every queued task of these partitions, all domains."""
        dropped: list[Task] = []
        for scheduler in self._schedulers.values():
            gone = scheduler.drop_partitions(tps)
            for task in gone:
                self._hold(task.lane_id, "", -1)
            dropped.extend(gone)
        return dropped

    def tenant_backlog(self) -> dict[str, int]:
        """Queued records per tenant, all domains."""
        backlog: dict[str, int] = {}
        for scheduler in self._schedulers.values():
            for tenant, records in scheduler.tenant_backlog().items():
                backlog[tenant] = backlog.get(tenant, 0) + records
        return backlog

    def queued(self) -> Iterator[Task]:
        """Every queued task, domain by domain."""
        for scheduler in self._schedulers.values():
            yield from scheduler.queued()

    def next_due(self) -> float | None:
        """When the earliest backing-off task of any domain becomes eligible."""
        due = [d for s in self._schedulers.values() if (d := s.next_due()) is not None]
        return min(due) if due else None

    def held_lanes(self) -> int:
        """Lanes holding at least one task (for tests and status)."""
        return len(self._lanes)

    def _hold(self, lane_id: Hashable, domain: str, delta: int) -> None:
        held = self._lanes.get(lane_id)
        if held is None:
            if delta <= 0:
                return
            held = self._lanes[lane_id] = [domain, 0]
        held[1] += delta
        if held[1] <= 0:
            del self._lanes[lane_id]
