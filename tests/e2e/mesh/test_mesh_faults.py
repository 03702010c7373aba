"""Faults on the mesh path: SIGKILL the worker's mesh node, or the hub, mid-stream.

While the node is down, publishes fail and are retried with backoff; once the attempts
run out the credit is restored and the records requeued, and
supervisor_mesh_dispatch_total{status="failure"} counts each time. When the node is back
everything drains, and no record is lost.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.mesh.mesh_procs import MeshNodes, metric_in
from tests.support.audit import assert_committed_at_end, audit_topics, uncovered_below
from tests.support.deadline import wait_until
from tests.support.procs import Processes, Stack, produce_demo
from tests.support.topics import read_all

pytestmark = pytest.mark.kafka

COUNT = 4_000
PARTITIONS = 2
BATCH = 100
INFLIGHT = 2


@pytest.mark.parametrize("victim", ["worker", "hub"])
def test_sigkill_a_mesh_node_mid_stream(
    victim: str,
    procs: Processes,
    stack: Stack,
    tmp_path: Path,
    record_property: pytest.RecordProperty,
) -> None:
    produce_demo(procs, stack, COUNT, PARTITIONS)
    ends = stack.end_offsets()
    mesh = MeshNodes.create(procs, tmp_path / "mesh")
    mesh.start_all()
    sup = procs.supervisor(stack.env(BATCH_MAX_RECORDS=BATCH, **mesh.supervisor_env()))
    worker = procs.worker(
        stack.env(
            SUPERVISOR_GRPC_ADDR=sup.grpc_addr,
            MAX_INFLIGHT=INFLIGHT,
            WORKER_PROCESSOR="tests.support.processors:slow",
            SLOW_TASK_SECONDS="0.05",
            WORKER_ID="mesh-worker",
            **mesh.worker_env("worker", "default"),
        )
    )
    sup.wait_workers(1)

    def busy() -> bool:
        views = sup.workers()
        return sup.records_done() >= COUNT // 8 and bool(views) and views[0]["in_flight"] > 0

    wait_until(busy, 60, interval=0.05, message=lambda: f"status {sup.status()}")
    mesh.kill(victim)
    done_at_kill = sup.records_done()
    assert done_at_kill < COUNT, "the stream was over before the kill: not mid-stream"

    def failure_count() -> float:
        return metric_in(sup.metrics(), "supervisor_mesh_dispatch_total", status="failure")

    # Publishes now fail; after their retries (100 ms doubling) the attempts run out.
    wait_until(lambda: failure_count() >= 1, 60, message=lambda: f"status {sup.status()}")
    metrics = sup.metrics()
    retries = sum(
        metric_in(metrics, "supervisor_mesh_publish_retries_total", reason=reason)
        for reason in ("unreachable", "no-subscriber")
    )
    assert retries >= 1, metrics
    # Nothing committed passes a record that is not written, outage or not.
    committed = stack.committed()
    output = read_all(stack.bootstrap, stack.topics.output)
    assert not uncovered_below(committed, output, stack.topics.input)

    mesh.start(victim)
    stack.wait_committed_at_end(120, ends)
    status = sup.status()
    failures = failure_count()
    # The failure metric counts exactly the publishes given up (each requeued its task).
    assert status["events"]["failures"].get("send-failed") == failures, (status, failures)
    assert status["events"]["records_done"] >= COUNT - done_at_kill, status
    if victim == "worker":
        assert "mesh subscription lost" in worker.stderr()

    assert sup.terminate(timeout=60) == 0, sup.tail()
    assert_committed_at_end(stack.committed(), ends)
    assert worker.alive(), worker.tail()
    assert worker.terminate(timeout=60) == 0, worker.tail()

    audit = audit_topics(stack.bootstrap, stack.topics.input, stack.topics.output, stack.topics.dlq)
    record_property("duplicates", audit.duplicates)
    print(
        f"{victim} node SIGKILL: failures {failures}, events {status['events']}; {audit.summary()}"
    )
    assert len(audit.inputs) == COUNT
    assert not audit.lost, audit.summary()
    assert not audit.bogus
    assert not audit.dead, "valid events only: nothing belongs in the DLQ"
    # Only tasks whose delivery was in doubt at the kill can be written twice.
    assert audit.duplicates <= INFLIGHT * BATCH, audit.summary()
