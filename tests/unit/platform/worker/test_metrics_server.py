"""A worker's own /metrics: dead letters counted by tenant and kind, served on its port."""

from __future__ import annotations

import urllib.request

from streamplane.config import load_settings
from streamplane.platform import headers as h
from streamplane.platform import metrics as m
from streamplane.platform.headers import HeaderList
from streamplane.platform.records import Records
from streamplane.platform.worker.metrics_server import DeadLetterCounting, start_metrics_server
from streamplane.platform.worker.processor import Emit, Processor, ProcessorContext, WorkItem


class HalfBad(Processor):
    """Dead-letters every other record (kind ``parse``), writes the rest to the output."""

    def process(self, item: WorkItem, emit: Emit) -> None:
        for i, value in enumerate(item.records.values):
            tenant = item.tenant_at(i)
            source = h.source_headers("in", 0, item.records.offsets[i], tenant, 1)
            if i % 2:
                headers = h.dead_letter_headers([], source, "parse", "not JSON")
                emit("in.dlq", None, value, headers)
            else:
                emit("out", None, value, source)


def _value(tenant: str, kind: str) -> float:
    return m.WORKER_DEAD_LETTERED.labels(tenant, kind)._value.get()


def test_dead_letters_are_counted_by_tenant_and_kind() -> None:
    settings = load_settings()
    counting = DeadLetterCounting(HalfBad())
    counting.open(ProcessorContext(output_topic="out", dlq_topic="in.dlq", settings=settings))
    records = Records(
        "in", 0, offsets=[0, 1, 2, 3], timestamps_ms=[0] * 4, keys=[None] * 4,
        values=[b"a", b"b", b"c", b"d"], tenants=["ta", "ta", "tb", "tb"],
    )  # fmt: skip
    before = (_value("ta", "parse"), _value("tb", "parse"))
    written: list[tuple[str, HeaderList]] = []
    counting.process(
        WorkItem("t1", "ta", 1, records), lambda t, _k, _v, hs: written.append((t, hs))
    )
    assert [t for t, _ in written] == ["out", "in.dlq", "out", "in.dlq"], "every write passes"
    assert (_value("ta", "parse"), _value("tb", "parse")) == (before[0] + 1, before[1] + 1)


def test_metrics_are_served_on_their_own_port() -> None:
    server, port = start_metrics_server("127.0.0.1:0")
    try:
        m.WORKER_DEAD_LETTERED.labels("served", "schema").inc()
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
        assert 'worker_dead_lettered_total{kind="schema",tenant="served"} 1.0' in body
    finally:
        server.shutdown()
        server.server_close()
