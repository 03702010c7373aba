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
from typing import Protocol

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
        """Emit the outputs of every record of `item`."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""


ProcessorFactory = Callable[[Settings], Processor]


def load_processor(spec: str, settings: Settings) -> Processor:
    """`features` (the default) or `package.module:factory`, a callable taking Settings."""
    if spec == "features":
        from streamplane.platform.worker.features_processor import FeaturesProcessor

        features = FeaturesProcessor(settings)
        if not settings.rl.rl_results_topic:
            return features
        # With RL enabled the worker is also the seed's env runner: rollout requests in
        # the same stream go to Gymnasium, everything else to the feature transform.
        from streamplane.platform.training.env_runner import RolloutProcessor, is_rollout
        from streamplane.platform.worker.routing import RoutingProcessor

        return RoutingProcessor(features, RolloutProcessor(settings), is_rollout)
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(
            "WORKER_PROCESSOR", f"expected 'features' or 'module:factory', got {spec!r}"
        )
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError("WORKER_PROCESSOR", f"cannot load {spec!r}: {exc}") from exc
    processor = factory(settings)
    if not isinstance(processor, Processor):
        raise ConfigError("WORKER_PROCESSOR", f"{spec!r} did not return a Processor")
    return processor
