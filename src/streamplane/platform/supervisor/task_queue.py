"""The queues of ready tasks a dispatcher serves: the interface its schedulers meet.

`Scheduler` (fair across tenants) and `DomainScheduler` (one fair queue per mesh domain)
implement it; the dispatcher pops from it when a worker has credit and releases a task's
ordering lane when its attempt ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

from streamplane.platform.supervisor.tasks import Task, TopicPartition


class TaskQueue(Protocol):
    """The queue of ready tasks a dispatcher serves (`Scheduler`, or one per mesh domain)."""

    @property
    def queued_tasks(self) -> int:
        """Tasks waiting."""

    @property
    def queued_records(self) -> int:
        """Records waiting."""

    def push(self, task: Task) -> None:
        """Queue a task at the back of its lane."""

    def pop(self, now: float) -> Task | None:
        """The next task, or None; its lane becomes busy."""

    def release(self, task: Task, requeue: bool, now: float) -> None:
        """The task left its worker: free its lane and, if asked, queue it again."""

    def replace(self, task: Task, parts: Iterable[Task], now: float) -> None:
        """Free a task's lane and queue `parts` in its place."""

    def drop_partitions(self, tps: set[TopicPartition]) -> list[Task]:
        """Remove every queued task of these partitions; return them."""

    def tenant_backlog(self) -> dict[str, int]:
        """Queued records per tenant."""

    def queued(self) -> Iterator[Task]:
        """Every queued task."""


@runtime_checkable
class DomainTaskQueue(TaskQueue, Protocol):
    """A task queue split by mesh domain: a worker takes only its domains' tasks."""

    def pop_for(self, domains: Iterable[str], now: float) -> Task | None:
        """The next task of one of `domains`, or None."""
