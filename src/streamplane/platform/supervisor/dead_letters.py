"""Writes records that exhausted their attempts to the dead-letter topic.

A record's offset may advance only once its dead-letter copy is confirmed written
(acks=all delivery report), so the writer reports back per task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException, Producer

from streamplane.platform import headers as h
from streamplane.platform.supervisor.tasks import Task

logger = logging.getLogger(__name__)


class DeadLetterWriter:
    """Produces dead letters and reports each task's outcome through callbacks."""

    def __init__(
        self,
        producer: Producer,
        topic: str,
        on_written: Callable[[Task], None],
        on_failed: Callable[[Task], None],
        on_count: Callable[[str, int], None] | None = None,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._on_written = on_written
        self._on_failed = on_failed
        self._on_count = on_count

    def write(self, task: Task, kind: str, reason: str) -> None:
        """Produce every record of `task` to the dead-letter topic."""
        records = task.records
        remaining = [len(records)]
        failed: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                failed.append(str(err))
            remaining[0] -= 1
            if remaining[0] == 0:
                self._settle(task, kind, failed)

        extra = h.error_headers(kind, reason)
        for i, offset in enumerate(records.offsets):
            hdrs: h.HeaderList = list(records.headers_of(i))
            tenant = records.tenants[i] if records.tenants else task.tenant
            hdrs += h.source_headers(records.topic, records.partition, offset, tenant, task.attempt)
            hdrs += extra
            try:
                self._producer.produce(
                    self._topic,
                    value=records.values[i],
                    key=records.keys[i],
                    headers=hdrs,
                    on_delivery=delivered,
                )
            except (BufferError, KafkaException) as exc:
                # Not queued, so no report will come for it: count it as failed now.
                delivered(exc, None)
        logger.warning(
            "records dead-lettered",
            extra={"task": task.task_id, "records": len(records), "kind": kind, "reason": reason},
        )

    def _settle(self, task: Task, kind: str, failed: list[str]) -> None:
        if failed:
            logger.error(
                "dead-letter write failed", extra={"task": task.task_id, "error": failed[0]}
            )
            self._on_failed(task)
            return
        if self._on_count is not None:
            self._on_count(kind, task.size)
        self._on_written(task)

    def poll(self) -> None:
        """Serve delivery reports; call often from the event loop."""
        self._producer.poll(0)

    def flush(self, timeout: float) -> int:
        """Wait for outstanding writes; returns how many are still undelivered."""
        return int(self._producer.flush(timeout))
