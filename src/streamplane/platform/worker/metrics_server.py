"""A worker's own Prometheus endpoint, and the dead letters it writes counted there.

Workers write most dead letters themselves (records that are not JSON, or break the
schema: ``sp-error-kind`` ``parse`` / ``schema``), so the supervisor never sees them.
Each worker therefore exports its own ``/metrics`` on ``WORKER_METRICS_LISTEN``
(off by default: several workers on one host would fight over a fixed port; the Dagster
worker runs give each one a free loopback port, a pod sets one for its scraper):

- ``worker_dead_lettered_total{tenant, kind}``: dead letters this worker emitted, read
  from the ``sp-tenant`` and ``sp-error-kind`` headers it wrote (tenants capped by
  :data:`streamplane.platform.metrics.tenant_label`);
- ``worker_records_received_total``: records of the tasks it processed;
- and the worker's other ``worker_*`` metrics.

The counting wraps the processor: every emit to the dead-letter topic is counted as it
is handed to the producer (a rejected attempt's letters may be written again later).
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import start_http_server

from streamplane.config import Settings, parse_listen
from streamplane.platform import headers as h
from streamplane.platform import metrics as m
from streamplane.platform.headers import HeaderList
from streamplane.platform.worker.processor import Emit, Processor, ProcessorContext, WorkItem

__all__ = ["DeadLetterCounting", "serve_worker_metrics", "start_metrics_server"]

logger = logging.getLogger(__name__)


def start_metrics_server(listen: str) -> tuple[Any, int]:
    """Serve the process's Prometheus registry on ``[HOST]:PORT``; returns (server, port)."""
    host, port = parse_listen(listen)
    server, _thread = start_http_server(port, host)
    return server, int(server.server_port)


def serve_worker_metrics(settings: Settings, processor: Processor) -> Processor:
    """Start ``/metrics`` when WORKER_METRICS_LISTEN is set; count the processor's dead letters.

    Returns the processor to run: ``processor`` wrapped so that its dead letters are
    counted (whether or not the endpoint is served, the counters are kept).
    """
    listen = settings.worker.worker_metrics_listen
    if listen:
        _server, port = start_metrics_server(listen)
        logger.info("worker metrics served", extra={"listen": listen, "port": port})
    return DeadLetterCounting(processor)


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


class DeadLetterCounting(Processor):
    """A processor that counts what ``inner`` emits to the dead-letter topic."""

    def __init__(self, inner: Processor) -> None:
        self.inner = inner
        self.name = inner.name
        self._dlq_topic: str | None = None

    def open(self, context: ProcessorContext) -> None:
        """Learn the dead-letter topic, then open the wrapped processor."""
        self._dlq_topic = context.dlq_topic
        self.inner.open(context)

    def process(self, item: WorkItem, emit: Emit) -> None:
        """Run the wrapped processor, counting its dead-letter emits by tenant and kind."""
        m.WORKER_RECORDS_IN.inc(len(item.records))
        dlq = self._dlq_topic

        def counted(topic: str, key: bytes | None, value: bytes, headers: HeaderList) -> None:
            if topic == dlq:
                count_dead_letter(headers)
            emit(topic, key, value, headers)

        self.inner.process(item, counted)

    def close(self) -> None:
        """Close the wrapped processor."""
        self.inner.close()


def count_dead_letter(headers: HeaderList) -> None:
    """Count one dead letter by its ``sp-tenant`` and ``sp-error-kind`` headers."""
    tenant, kind = h.DEFAULT_TENANT, "unknown"
    for name, value in headers:
        if name == h.TENANT:
            tenant = _text(value) or tenant
        elif name == h.ERROR_KIND:
            kind = _text(value) or kind
    m.WORKER_DEAD_LETTERED.labels(m.tenant_label(tenant), kind).inc()
