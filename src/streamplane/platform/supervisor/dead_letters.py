"""Writes records that exhausted their attempts to the dead-letter topic.

A record's offset may advance only once its dead-letter copy is confirmed written
(acks=all delivery report), so the writer reports back per task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from streamplane.platform import headers as h
from streamplane.platform.kafka.exceptions import KafkaPlatformError
from streamplane.platform.kafka.producer import DeliveryGroup, DurableProducer
from streamplane.platform.supervisor.tasks import Task

logger = logging.getLogger(__name__)


class DeadLetterWriter:
    """Produces dead letters and reports each task's outcome to the caller's ``settle``."""

    def __init__(
        self,
        producer: DurableProducer,
        topic: str,
        on_count: Callable[[str, int], None] | None = None,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._on_count = on_count

    def write(
        self, task: Task, kind: str, reason: str, settle: Callable[[Task, bool], None]
    ) -> None:
        """Produce every record of `task` to the dead-letter topic; ``settle`` follows once."""
        records = task.records
        delivery = DeliveryGroup(lambda error: self._settle(task, kind, error, settle))
        source = h.SourceHeaders(records.topic, records.partition, task.attempt)
        for i, offset in enumerate(records.offsets):
            tenant = records.tenants[i] if records.tenants else task.tenant
            headers = h.dead_letter_headers(
                list(records.headers_of(i)), source(offset, tenant), kind, reason
            )
            delivery.written += 1
            try:
                self._producer.produce(
                    self._topic,
                    records.values[i],
                    records.keys[i],
                    headers,
                    delivery.report,
                )
            except KafkaPlatformError as exc:
                # Not queued, so no report will come for it: count it as failed now.
                delivery.written -= 1
                delivery.failed(exc)
        delivery.seal()
        logger.warning(
            "records dead-lettered",
            extra={"task": task.task_id, "records": len(records), "kind": kind, "reason": reason},
        )

    def _settle(
        self, task: Task, kind: str, error: str | None, settle: Callable[[Task, bool], None]
    ) -> None:
        if error is not None:
            logger.error("dead-letter write failed", extra={"task": task.task_id, "error": error})
            settle(task, False)
            return
        if self._on_count is not None:
            self._on_count(kind, task.size)
        settle(task, True)

    def poll(self) -> None:
        """Serve delivery reports; call often from the event loop."""
        self._producer.poll(0)

    def flush(self, timeout: float) -> int:
        """Wait for outstanding writes; returns how many are still undelivered."""
        return self._producer.flush(timeout)
