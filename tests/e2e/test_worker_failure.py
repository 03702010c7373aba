"""SIGKILL one of two workers mid-stream: its tasks are redelivered and nothing is lost."""

from __future__ import annotations

import pytest

from tests.support.audit import assert_committed_at_end, audit_topics
from tests.support.deadline import wait_until
from tests.support.procs import Processes, Stack, produce_demo

pytestmark = pytest.mark.kafka

COUNT = 8_000
PARTITIONS = 3
BATCH = 100
INFLIGHT = 2


def test_sigkill_one_of_two_workers_mid_stream(
    procs: Processes, stack: Stack, record_property: pytest.RecordProperty
) -> None:
    produce_demo(procs, stack, COUNT, PARTITIONS)
    ends = stack.end_offsets()
    sup = procs.supervisor(stack.env(BATCH_MAX_RECORDS=BATCH))
    slow = {
        "SUPERVISOR_GRPC_ADDR": sup.grpc_addr,
        "MAX_INFLIGHT": INFLIGHT,
        "WORKER_PROCESSOR": "tests.support.processors:slow",
        "SLOW_TASK_SECONDS": "0.1",
    }
    victim = procs.worker(stack.env(**slow, WORKER_ID="victim"), name="victim")
    survivor = procs.worker(stack.env(**slow, WORKER_ID="survivor"), name="survivor")
    sup.wait_workers(2)

    def victim_busy() -> bool:
        views = {w["id"]: w for w in sup.workers()}
        return (
            sup.records_done() >= COUNT // 8
            and views.get("victim", {}).get("records_done", 0) > 0
            and views["victim"]["in_flight"] > 0
        )

    wait_until(victim_busy, 60, interval=0.05, message=lambda: f"status {sup.status()}")
    victim.kill()
    done_at_kill = sup.records_done()
    assert done_at_kill < COUNT, "the stream was over before the kill: not mid-stream"

    stack.wait_committed_at_end(120, ends)
    status = sup.status()
    # The kill was noticed and what the victim held went to the survivor.
    assert status["events"]["failures"].get("worker-lost", 0) >= 1, status
    assert status["events"]["redelivered"] >= 1, status
    assert [w["id"] for w in sup.workers()] == ["survivor"]

    assert sup.terminate(timeout=60) == 0, sup.tail()
    assert_committed_at_end(stack.committed(), ends)
    assert survivor.terminate(timeout=60) == 0, survivor.tail()

    audit = audit_topics(stack.bootstrap, stack.topics.input, stack.topics.output, stack.topics.dlq)
    record_property("duplicates", audit.duplicates)
    print(f"worker SIGKILL: done at kill {done_at_kill}; {audit.summary()}")
    assert len(audit.inputs) == COUNT
    assert not audit.lost, audit.summary()
    assert not audit.bogus
    assert not audit.dead, "valid events only: nothing belongs in the DLQ"
    # Only what the victim held can be written twice: at most its credit in tasks.
    assert audit.duplicates <= INFLIGHT * BATCH, audit.summary()


def test_sigterm_one_of_two_workers_mid_stream_finishes_its_tasks(
    procs: Processes, stack: Stack, record_property: pytest.RecordProperty
) -> None:
    """Graceful worker stop (DESIGN 3.8): in-flight tasks finish, nothing is redone."""
    produce_demo(procs, stack, COUNT, PARTITIONS)
    ends = stack.end_offsets()
    sup = procs.supervisor(stack.env(BATCH_MAX_RECORDS=BATCH))
    slow = {
        "SUPERVISOR_GRPC_ADDR": sup.grpc_addr,
        "MAX_INFLIGHT": INFLIGHT,
        "WORKER_PROCESSOR": "tests.support.processors:slow",
        "SLOW_TASK_SECONDS": "0.1",
    }
    leaving = procs.worker(stack.env(**slow, WORKER_ID="leaving"), name="leaving")
    procs.worker(stack.env(**slow, WORKER_ID="staying"), name="staying")
    sup.wait_workers(2)

    def leaving_busy() -> bool:
        views = {w["id"]: w for w in sup.workers()}
        view = views.get("leaving", {})
        return sup.records_done() >= COUNT // 8 and view.get("in_flight", 0) > 0

    wait_until(leaving_busy, 60, interval=0.05, message=lambda: f"status {sup.status()}")
    assert leaving.terminate(timeout=60) == 0, leaving.tail()
    assert sup.records_done() < COUNT, "the stream was over before the stop"

    stack.wait_committed_at_end(120, ends)
    status = sup.status()
    assert sup.terminate(timeout=60) == 0, sup.tail()
    audit = audit_topics(stack.bootstrap, stack.topics.input, stack.topics.output, stack.topics.dlq)
    record_property("duplicates", audit.duplicates)
    print(f"worker SIGTERM: events {status['events']}; {audit.summary()}")
    assert not audit.lost, audit.summary()
    assert not audit.bogus
    # Nothing failed, so nothing may be written twice.
    assert status["events"]["failures"] == {}, status
    assert audit.duplicates == 0, audit.summary()
