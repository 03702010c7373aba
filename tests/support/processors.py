"""Processors that tests load into real worker processes via WORKER_PROCESSOR.

They exercise the worker's processor seam: `module:factory` taking Settings.
"""

from __future__ import annotations

import os
import time

from streamplane.config import Settings
from streamplane.platform import headers as h
from streamplane.platform.worker.features_processor import FeaturesProcessor
from streamplane.platform.worker.processor import Emit, Processor, ProcessorContext, WorkItem


class Passthrough(Processor):
    """Copies each value to the output topic with the sp-* headers."""

    def __init__(self, settings: Settings) -> None:
        self.output = settings.kafka.output_topic

    def open(self, context: ProcessorContext) -> None:
        self.output = context.output_topic

    def process(self, item: WorkItem, emit: Emit) -> None:
        r = item.records
        source = h.SourceHeaders(r.topic, r.partition, item.attempt)
        for i, offset in enumerate(r.offsets):
            emit(self.output, r.keys[i], r.values[i], source(offset, item.tenant_at(i)))


class PoisonAware(FeaturesProcessor):
    """The real feature processor, but any task holding a value with b"POISON" fails."""

    def process(self, item: WorkItem, emit: Emit) -> None:
        if any(b"POISON" in v for v in item.records.values):
            raise RuntimeError("poison record in task")
        super().process(item, emit)


class Slow(FeaturesProcessor):
    """The real feature processor, sleeping SLOW_TASK_SECONDS per task (a slow worker)."""

    def process(self, item: WorkItem, emit: Emit) -> None:
        time.sleep(float(os.environ.get("SLOW_TASK_SECONDS", "0.05")))
        super().process(item, emit)


def passthrough(settings: Settings) -> Processor:
    return Passthrough(settings)


def poison_aware(settings: Settings) -> Processor:
    return PoisonAware(settings)


def slow(settings: Settings) -> Processor:
    return Slow(settings)
