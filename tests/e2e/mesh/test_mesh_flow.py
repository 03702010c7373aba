"""Tasks through MeshData on the real broker: supervisor -> hub -> node -> worker.

Hub, worker and trainer node processes; one worker subscribed at the worker node
(domain default), one at the trainer node (domain rl). tenant-1 is pinned to rl: its
records reach only the trainer node's worker, everything else only the other one.
Acks return on gRPC, and a committed offset never passes a record not yet written.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from streamplane.platform import headers as h
from tests.e2e.mesh.mesh_procs import MeshNodes, metric_in
from tests.support.audit import assert_committed_at_end, audit_topics, uncovered_below
from tests.support.deadline import wait_until
from tests.support.procs import Processes, Stack, produce_demo
from tests.support.topics import read_all

pytestmark = pytest.mark.kafka

COUNT = 3_000
PARTITIONS = 3
BATCH = 100


def test_tasks_flow_through_the_mesh_and_a_pinned_tenant_stays_in_its_domain(
    procs: Processes, stack: Stack, tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    produce_demo(procs, stack, COUNT, PARTITIONS, tenants=3)
    ends = stack.end_offsets()
    mesh = MeshNodes.create(procs, tmp_path / "mesh")
    mesh.start_all()
    sup = procs.supervisor(
        stack.env(BATCH_MAX_RECORDS=BATCH, **mesh.supervisor_env(tenant_map="tenant-1=rl"))
    )
    # Slow enough that the run lasts a while: offsets are checked mid-stream too.
    slow = {"WORKER_PROCESSOR": "tests.support.processors:slow", "SLOW_TASK_SECONDS": "0.02"}
    env = stack.env(SUPERVISOR_GRPC_ADDR=sup.grpc_addr, MAX_INFLIGHT=2, **slow)
    main = procs.worker({**env, **mesh.worker_env("worker", "default"), "WORKER_ID": "main"})
    pinned = procs.worker({**env, **mesh.worker_env("trainer", "rl"), "WORKER_ID": "pinned"})
    sup.wait_workers(2)

    # Mid-stream: whatever is committed is already written (acks came back first).
    wait_until(lambda: any(stack.committed().values()), 60, message=lambda: str(sup.status()))
    committed = stack.committed()
    assert not uncovered_below(
        committed, read_all(stack.bootstrap, stack.topics.output), stack.topics.input
    )

    stack.wait_committed_at_end(120, ends)
    status = sup.status()
    assert status["events"]["failures"] == {}, status
    assert status["events"]["records_done"] == COUNT, status
    done = {w["id"]: w["records_done"] for w in sup.workers()}
    supervisor_metrics = sup.metrics()
    dispatched = status["events"]["dispatched"]
    assert metric_in(supervisor_metrics, "supervisor_mesh_dispatch_total", status="success") == (
        dispatched
    )
    assert metric_in(supervisor_metrics, "supervisor_mesh_dispatch_total", status="failure") == 0

    assert sup.terminate(timeout=60) == 0, sup.tail()
    assert_committed_at_end(stack.committed(), ends)
    for worker in (main, pinned):
        assert worker.alive(), worker.tail()
        assert "taking tasks by mesh" in worker.stderr()
        assert worker.terminate(timeout=60) == 0, worker.tail()

    audit = audit_topics(stack.bootstrap, stack.topics.input, stack.topics.output, stack.topics.dlq)
    record_property("duplicates", audit.duplicates)
    print(f"mesh flow: workers {done}; {audit.summary()}")
    assert not audit.lost, audit.summary()
    assert not audit.bogus
    assert audit.duplicates == 0, audit.summary()
    tenants = Counter(r.headers[h.TENANT].decode() for r in audit.outputs)
    # The pinned tenant went only to the worker at the trainer node, the rest only to main.
    assert done == {"main": COUNT - tenants["tenant-1"], "pinned": tenants["tenant-1"]}, done
    assert tenants["tenant-1"] > 0

    # The nodes saw it the same way: rl only at the trainer node, default only at worker.
    hub, worker_node, trainer_node = mesh["hub"], mesh["worker"], mesh["trainer"]
    tasks_rl = trainer_node.metric("mesh_node_delivered_total", domain="rl")
    tasks_default = worker_node.metric("mesh_node_delivered_total", domain="default")
    assert tasks_rl > 0
    assert tasks_default > 0
    assert tasks_rl + tasks_default == dispatched
    assert worker_node.metric("mesh_node_delivered_total", domain="rl") == 0
    assert hub.metric("mesh_node_forwarded_total", domain="rl") == tasks_rl
    assert hub.metric("mesh_node_forwarded_total", domain="default") == tasks_default
    assert worker_node.metric("mesh_node_queue_depth", domain="default") == 0
