"""Runs a processor over one task and reports once every write is durable.

Writes go through one idempotent acks=all producer. Each task counts its own delivery
reports, so tasks overlap: the worker processes task N+1 while N's writes are in flight,
and acks N the moment its last report arrives.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from streamplane.platform import metrics as m
from streamplane.platform.kafka.producer import DeliveryGroup, DurableProducer
from streamplane.platform.worker.processor import Processor, WorkItem

logger = logging.getLogger(__name__)

Done = Callable[[str | None, Mapping[str, int]], None]
"""Called once a task's writes are settled: (first error or None, records per topic)."""

# How long one poll of the delivery-report thread blocks: the ack latency floor.
POLL_S = 0.005


class Pipeline:
    """Processor + producer + delivery tracking for one worker."""

    def __init__(self, processor: Processor, producer_conf: dict[str, object]) -> None:
        self.processor = processor
        self._conf = producer_conf
        self._producer: DurableProducer | None = None
        self._poller: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        """Create the producer and its delivery-report thread."""
        self._producer = DurableProducer(self._conf)
        self._poller = threading.Thread(target=self._poll_forever, name="sp-delivery", daemon=True)
        self._poller.start()

    def _poll_forever(self) -> None:
        producer = self._producer
        assert producer is not None
        while not self._stopping.is_set():
            producer.poll(POLL_S)

    def run(self, item: WorkItem, done: Done) -> None:
        """Process `item` (on the caller's thread); `done` fires when writes are durable.

        `done` gets the first delivery error (None when all were delivered) and the
        records written per topic: on success, what the ack's write proof reports.

        Raises whatever the processor raises: that attempt is then rejected. Writes made
        before the exception may still land; the supervisor counts them as duplicates.
        """
        producer = self._producer
        assert producer is not None
        delivery = DeliveryGroup(lambda error: done(error, delivery.by_topic))
        emit = producer.writer(delivery)
        # Seal only on success: a failed task is answered with REJECT by the caller, and
        # its writes that still report in must never turn into an OK ack.
        self.processor.process(item, emit)
        delivery.seal()
        m.WORKER_RECORDS_OUT.labels("all").inc(delivery.written)

    def stop(self, timeout: float = 30.0) -> int:
        """Flush outstanding writes and stop; returns writes still undelivered."""
        self._stopping.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
        left = 0
        if self._producer is not None:
            left = self._producer.flush(timeout)
        self.processor.close()
        return left
