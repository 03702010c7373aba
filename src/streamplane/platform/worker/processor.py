"""The worker's processor seam: what turns one task's records into output records.

A processor writes through an `Emit` callable; the pipeline tracks every write's delivery
report and acks the task only once all of them are durable. Raising from `process`
rejects the attempt (the supervisor bisects and eventually dead-letters the culprit);
a bad *record* should instead be emitted to the dead-letter topic, so the rest of the
task goes on.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol

from streamplane.config import Settings
from streamplane.exceptions import ConfigError
from streamplane.platform.headers import HeaderList
from streamplane.platform.records import Records, unpack
from streamplane.runner.v1 import runner_pb2


class Emit(Protocol):
    """Writes one record; its delivery is tracked by the pipeline."""

    def __call__(self, topic: str, key: bytes | None, value: bytes, headers: HeaderList) -> None:
        """Produce the record."""


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One task as a processor sees it: its records as columns."""

    task_id: str
    tenant: str
    attempt: int
    records: Records

    def tenant_at(self, index: int) -> str:
        """The tenant of record `index` (a task in an ordered lane may mix tenants)."""
        tenants = self.records.tenants
        return tenants[index] if tenants else self.tenant

    def select(self, indices: list[int]) -> WorkItem:
        """The same task restricted to the records at `indices`."""
        return WorkItem(self.task_id, self.tenant, self.attempt, self.records.select(indices))

    @classmethod
    def from_task(cls, task: runner_pb2.Task) -> WorkItem:
        """Unpack a wire Task; raises ValueError if its record batch is inconsistent."""
        return cls(task.task_id, task.tenant, task.attempt, unpack(task.records))


@dataclass(frozen=True, slots=True)
class ProcessorContext:
    """What a processor needs to know about where its output goes."""

    output_topic: str
    dlq_topic: str
    settings: Settings


class Processor(ABC):
    """Turns a task into output records; one instance per worker, called serially."""

    name = "processor"

    def open(self, context: ProcessorContext) -> None:  # noqa: B027 - optional hook
        """Called once the supervisor has welcomed the worker (topics are known)."""

    @abstractmethod
    def process(self, item: WorkItem, emit: Emit) -> None:
        """Emit the outputs of every record of `item`.

        At least one write (an output or a dead letter) per input record: the ack's
        write proof reports the writes, and the supervisor refuses an OK for fewer.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""


ProcessorFactory = Callable[[Settings], Processor]
RouteFactory = Callable[[Settings, Processor], Processor]
"""Takes the processor chosen so far; returns it, or one that takes a share of its records."""

#: Entry-point group of named processors: ``name = "module:factory"``, a ProcessorFactory.
PROCESSORS_GROUP = "streamplane.processors"
#: Entry-point group of routes: ``name = "module:factory"``, a RouteFactory. Each route
#: wraps a named processor (applied in name order) and may hand some records to another
#: processor, as the RL env runner takes the rollout requests (``rl.rollout`` records).
ROUTES_GROUP = "streamplane.routes"
_VARIABLE = "WORKER_PROCESSOR"


def registered_processors() -> list[str]:
    """The names WORKER_PROCESSOR may take (besides ``module:factory``), sorted."""
    return sorted({ep.name for ep in entry_points(group=PROCESSORS_GROUP)})


def load_processor(spec: str, settings: Settings) -> Processor:
    """The processor WORKER_PROCESSOR names; raises ConfigError if it cannot be built.

    ``spec`` is a name registered in the ``streamplane.processors`` entry-point group
    (``features``, the default, is the plane's own), wrapped by every registered route, or
    ``package.module:factory``: a callable taking Settings, used as it is.
    """
    if ":" in spec:
        return _checked(_import_factory(spec)(settings), spec)
    found = {ep.name: ep for ep in entry_points(group=PROCESSORS_GROUP)}
    if spec not in found:
        names = ", ".join(sorted(found)) or "none"
        raise ConfigError(
            _VARIABLE, f"unknown processor {spec!r}; registered: {names}; or module:factory"
        )
    processor = _checked(_load(found[spec], spec)(settings), spec)
    for route in sorted(entry_points(group=ROUTES_GROUP), key=lambda ep: ep.name):
        processor = _checked(_load(route, route.value)(settings, processor), route.value)
    return processor


def _import_factory(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(
            _VARIABLE, f"expected a registered name or 'module:factory', got {spec!r}"
        )
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(_VARIABLE, f"cannot load {spec!r}: {exc}") from exc


def _load(entry_point: EntryPoint, what: str) -> Any:
    try:
        return entry_point.load()
    except (ImportError, AttributeError) as exc:
        raise ConfigError(_VARIABLE, f"cannot load {what!r}: {exc}") from exc


def _checked(processor: object, spec: str) -> Processor:
    if not isinstance(processor, Processor):
        raise ConfigError(_VARIABLE, f"{spec!r} did not return a Processor")
    return processor
