"""Processors that tests load into real worker processes via WORKER_PROCESSOR.

They exercise the worker's processor seam: `module:factory` taking Settings.
"""

from __future__ import annotations

import os
import time

from streamplane.config import Settings
from streamplane.platform import headers as h
from streamplane.platform.worker.features_processor import FeaturesProcessor
from streamplane.platform.worker.processor import Emit, Processor, ProcessorContext
from streamplane.runner.v1 import runner_pb2


class Passthrough(Processor):
    """Copies each value to the output topic with the sp-* headers."""

    def __init__(self, settings: Settings) -> None:
        self.output = settings.output_topic

    def open(self, context: ProcessorContext) -> None:
        self.output = context.output_topic

    def process(self, task: runner_pb2.Task, emit: Emit) -> None:
        for r in task.records:
            emit(
                self.output,
                r.key if r.has_key else None,
                r.value,
                h.source_headers(r.topic, r.partition, r.offset, task.tenant, task.attempt),
            )


class PoisonAware(FeaturesProcessor):
    """The real feature processor, but any task holding a value with b"POISON" fails."""

    def process(self, task: runner_pb2.Task, emit: Emit) -> None:
        if any(b"POISON" in r.value for r in task.records):
            raise RuntimeError("poison record in task")
        super().process(task, emit)


class Slow(FeaturesProcessor):
    """The real feature processor, sleeping SLOW_TASK_SECONDS per task (a slow worker)."""

    def process(self, task: runner_pb2.Task, emit: Emit) -> None:
        time.sleep(float(os.environ.get("SLOW_TASK_SECONDS", "0.05")))
        super().process(task, emit)


def passthrough(settings: Settings) -> Processor:
    return Passthrough(settings)


def poison_aware(settings: Settings) -> Processor:
    return PoisonAware(settings)


def slow(settings: Settings) -> Processor:
    return Slow(settings)
