"""The default processor: demo events in, one feature record out per event.

Valid events become feature rows on OUTPUT_TOPIC with the key preserved; events that do
not parse or break the schema go to the dead-letter topic with the reason, and the rest
of the task goes on.
"""

from __future__ import annotations

from streamplane.config import Settings
from streamplane.platform import headers as h
from streamplane.platform.features import get_engine
from streamplane.platform.worker.processor import Emit, Processor, ProcessorContext
from streamplane.runner.v1 import runner_pb2


class FeaturesProcessor(Processor):
    """Feature transform with the configured engine (polars, or cudf on a GPU)."""

    name = "features"

    def __init__(self, settings: Settings) -> None:
        self._engine = get_engine(settings.worker_engine)
        self._output = settings.output_topic
        self._dlq = settings.dlq_topic

    def open(self, context: ProcessorContext) -> None:
        """Follow the topics the supervisor names."""
        self._output = context.output_topic
        self._dlq = context.dlq_topic

    def process(self, task: runner_pb2.Task, emit: Emit) -> None:
        """Transform the batch; route rows to the output and bad records to the DLQ."""
        records = task.records
        batch = self._engine.transform(
            [r.value for r in records], [r.timestamp_ms for r in records]
        )
        tenant, attempt, output = task.tenant, task.attempt, self._output
        for index, value in zip(batch.indices, batch.values, strict=True):
            r = records[index]
            emit(
                output,
                r.key if r.has_key else None,
                value,
                h.source_headers(r.topic, r.partition, r.offset, tenant, attempt),
            )
        for error in batch.errors:
            r = records[error.index]
            headers: h.HeaderList = [(x.key, x.value) for x in r.headers]
            headers += h.source_headers(r.topic, r.partition, r.offset, tenant, attempt)
            headers += h.error_headers(error.kind, error.reason)
            emit(self._dlq, r.key if r.has_key else None, r.value, headers)
