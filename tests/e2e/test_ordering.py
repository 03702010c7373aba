"""ORDERING=key: per-key output order equals input order, even across a worker's death.

Order is judged on the first copy of each record in the output topic (one key lands in
one output partition): at-least-once may repeat a redelivered record after a failure,
but no record may be written for the first time before an earlier record of its key.
"""

from __future__ import annotations

import pytest

from tests.support.audit import Audit, assert_committed_at_end, audit_topics
from tests.support.deadline import wait_until
from tests.support.procs import Processes, Stack, produce_demo

pytestmark = pytest.mark.kafka

COUNT = 6_000
PARTITIONS = 2
USERS = 40  # few keys, so every key has ~150 events spread over many tasks


def _run_key_ordering(
    procs: Processes, stack: Stack, tenants: int, record_property: pytest.RecordProperty
) -> Audit:
    produce_demo(procs, stack, COUNT, PARTITIONS, tenants=tenants, users=USERS)
    ends = stack.end_offsets()
    sup = procs.supervisor(stack.env(ORDERING="key", BATCH_MAX_RECORDS=50))
    slow = stack.env(
        SUPERVISOR_GRPC_ADDR=sup.grpc_addr,
        MAX_INFLIGHT=4,
        WORKER_PROCESSOR="tests.support.processors:slow",
        SLOW_TASK_SECONDS="0.03",
    )
    victim = procs.worker({**slow, "WORKER_ID": "victim"}, name="victim")
    procs.worker({**slow, "WORKER_ID": "steady"}, name="steady")
    sup.wait_workers(2)

    def victim_busy() -> bool:
        views = {w["id"]: w for w in sup.workers()}
        victim_view = views.get("victim", {})
        return (
            sup.records_done() >= COUNT // 5
            and victim_view.get("records_done", 0) > 0
            and victim_view.get("in_flight", 0) > 0
        )

    wait_until(victim_busy, 60, interval=0.05, message=lambda: f"status {sup.status()}")
    victim.kill()
    assert sup.records_done() < COUNT, "the stream was over before the kill"
    # A fresh worker joins after the failure, so redelivered tasks can go anywhere.
    procs.worker({**slow, "WORKER_ID": "late"}, name="late")

    stack.wait_committed_at_end(120, ends)
    status = sup.status()
    assert status["events"]["failures"].get("worker-lost", 0) >= 1, status
    assert sup.terminate(timeout=60) == 0, sup.tail()
    assert_committed_at_end(stack.committed(), ends)

    audit = audit_topics(stack.bootstrap, stack.topics.input, stack.topics.output, stack.topics.dlq)
    record_property("duplicates", audit.duplicates)
    print(  # the report the brief asks for
        f"key ordering, {tenants} tenant(s): regressions {audit.key_regressions()}, "
        f"redelivered {status['events']['redelivered']}; {audit.summary()}"
    )
    assert not audit.lost, audit.summary()
    assert not audit.bogus
    return audit


def test_key_order_single_tenant_through_a_worker_kill(
    procs: Processes, stack: Stack, record_property: pytest.RecordProperty
) -> None:
    audit = _run_key_ordering(procs, stack, 1, record_property)
    violations = audit.key_order_violations()
    assert not violations, "\n".join(violations)


def test_key_order_across_tenants_through_a_worker_kill(
    procs: Processes, stack: Stack, record_property: pytest.RecordProperty
) -> None:
    """The demo's keys (user ids) appear under several tenants; order is still per key."""
    audit = _run_key_ordering(procs, stack, 3, record_property)
    violations = audit.key_order_violations()
    assert not violations, "\n".join(violations)
