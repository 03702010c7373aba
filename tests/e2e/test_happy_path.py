"""No faults: one supervisor, two workers, 20k demo events with some malformed.

Every valid event lands once in OUTPUT_TOPIC, every malformed one once in the DLQ with
its reason, nothing twice, and SIGTERM drains and commits the end offsets, exit 0.
"""

from __future__ import annotations

import pytest

from streamplane.platform import headers as h
from streamplane.platform.kafka import admin
from tests.support.audit import (
    assert_committed_at_end,
    audit_topics,
    is_malformed_demo,
    source_of,
)
from tests.support.deadline import wait_until
from tests.support.procs import Processes, Stack, produce_demo

pytestmark = pytest.mark.kafka

COUNT = 20_000
PARTITIONS = 4


def test_two_workers_lose_nothing_and_stop_cleanly(
    procs: Processes, stack: Stack, record_property: pytest.RecordProperty
) -> None:
    # Both workers are connected before the first event is written, so round-robin has
    # two workers to share between from the start.
    admin.ensure_topics(stack.conf, {stack.topics.input: PARTITIONS})
    sup = procs.supervisor(stack.env())
    workers = [
        procs.worker(stack.env(SUPERVISOR_GRPC_ADDR=sup.grpc_addr, MAX_INFLIGHT=4))
        for _ in range(2)
    ]
    sup.wait_workers(2)
    written, malformed = produce_demo(procs, stack, COUNT, PARTITIONS, bad_fraction=0.02)
    assert malformed > 0
    ends = stack.end_offsets()
    assert sum(ends.values()) == COUNT
    wait_until(
        lambda: sup.committable() == ends and sup.status()["pending_records"] == 0,
        120,
        interval=0.2,
        message=lambda: f"supervisor never caught up: {sup.status()}",
    )
    status = sup.status()
    assert status["events"]["redelivered"] == 0, status
    assert status["events"]["failures"] == {}, status
    assert status["events"]["records_done"] == COUNT, status
    # Both workers took a share: round-robin over credit, not one worker doing it all.
    done = {w["id"]: w["records_done"] for w in sup.workers()}
    assert len(done) == 2, done
    assert all(n > 0 for n in done.values()), done

    assert sup.terminate(timeout=60) == 0, sup.tail()
    assert "drained" in sup.stderr()
    committed = stack.committed()
    assert_committed_at_end(committed, ends)
    for worker in workers:
        assert worker.alive(), f"{worker.name} died\n{worker.tail()}"
        assert worker.terminate(timeout=60) == 0, worker.tail()

    audit = audit_topics(stack.bootstrap, stack.topics.input, stack.topics.output, stack.topics.dlq)
    record_property("duplicates", audit.duplicates)
    print(f"happy path: {audit.summary()}")
    assert len(audit.inputs) == written
    assert not audit.lost, audit.summary()
    assert not audit.bogus, audit.bogus[:3]
    assert audit.duplicates == 0, audit.summary()
    assert not audit.in_both, sorted(audit.in_both)[:10]

    # Exactly the malformed events (by an independent check) are dead letters.
    expected_dead = {src for src, rec in audit.inputs.items() if is_malformed_demo(rec.value)}
    assert len(expected_dead) == malformed
    assert audit.dead_lettered == expected_dead
    assert len(audit.outputs) == written - malformed
    for record in audit.dead:
        src = source_of(record, stack.topics.input)
        assert src is not None
        original = audit.inputs[src]
        assert record.value == original.value, "a dead letter carries the original bytes"
        assert record.key == original.key
        assert record.headers.get(h.ERROR), record.headers
        assert record.headers.get(h.ERROR_KIND), record.headers
        assert record.headers.get(h.ATTEMPT) == b"1", record.headers

    # Output records keep their key and name their tenant; first attempts only.
    for record in audit.outputs:
        src = source_of(record, stack.topics.input)
        assert src is not None
        assert record.key == audit.inputs[src].key
        assert record.headers.get(h.TENANT, b"").startswith(b"tenant-"), record.headers
        assert record.headers.get(h.ATTEMPT) == b"1", record.headers
