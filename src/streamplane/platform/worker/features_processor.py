"""The default processor: demo events in, one feature record out per event.

Valid events become feature rows on OUTPUT_TOPIC with the key preserved; events that do
not parse or break the schema go to the dead-letter topic with the reason, and the rest
of the task goes on.
"""

from __future__ import annotations

from streamplane.config import Settings
from streamplane.platform import headers as h
from streamplane.platform.features import load_engine
from streamplane.platform.worker.processor import Emit, Processor, ProcessorContext, WorkItem


class FeaturesProcessor(Processor):
    """Feature transform with the configured engine (polars, or cudf on a GPU)."""

    name = "features"

    def __init__(self, settings: Settings) -> None:
        self._engine = load_engine(settings.worker.worker_engine)
        self._output = settings.kafka.output_topic
        self._dlq = settings.kafka.dlq_topic

    def open(self, context: ProcessorContext) -> None:
        """Follow the topics the supervisor names."""
        self._output = context.output_topic
        self._dlq = context.dlq_topic

    def process(self, item: WorkItem, emit: Emit) -> None:
        """Transform the batch; route rows to the output and bad records to the DLQ."""
        records = item.records
        batch = self._engine.transform(records.values, records.timestamps_ms)
        source = h.SourceHeaders(records.topic, records.partition, item.attempt)
        keys, offsets, output = records.keys, records.offsets, self._output
        if records.tenants:
            for index, value in zip(batch.indices, batch.values, strict=True):
                emit(output, keys[index], value, source(offsets[index], item.tenant_at(index)))
        else:
            tenant = item.tenant
            for index, value in zip(batch.indices, batch.values, strict=True):
                emit(output, keys[index], value, source(offsets[index], tenant))
        for error in batch.errors:
            i = error.index
            headers = h.dead_letter_headers(
                list(records.headers_of(i)),
                source(offsets[i], item.tenant_at(i)),
                error.kind,
                error.reason,
            )
            emit(self._dlq, keys[i], records.values[i], headers)
