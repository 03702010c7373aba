"""A rebalance that lands while backpressure has fetching paused: every partition the
supervisor keeps is fetched again, so the stream still ends.

librdkafka keeps a partition's pause across a revoke and a new assign. The supervisor
resumes fetching once its pending records drop, and a revoke drops them all at once:
that resume ran between the revoke and the new assignment, found nothing assigned, and
the partitions came back paused for good (a supervisor of the 1M-record exactly_once
rebalance test sat on three partitions for 500 s).
"""

from __future__ import annotations

import os
import signal

import pytest

from tests.support.audit import assert_accounted, assert_committed_at_end, audit_topics
from tests.support.deadline import wait_until
from tests.support.procs import Processes, Stack, free_port, produce_demo

pytestmark = pytest.mark.kafka

COUNT = 30_000
PARTITIONS = 6
# A bound a slow worker keeps full: the first supervisor is paused most of the time.
BACKPRESSURE = {"BATCH_MAX_RECORDS": 100, "MAX_PENDING_RECORDS": 2_000}
SLOW_WORKER = {
    "MAX_INFLIGHT": 2,  # with BATCH_MAX_RECORDS, the duplicates bound below
    "WORKER_PROCESSOR": "tests.support.processors:slow",
    "SLOW_TASK_SECONDS": "0.02",
}


def test_a_rebalance_while_paused_leaves_no_partition_paused(
    procs: Processes, stack: Stack
) -> None:
    produce_demo(procs, stack, COUNT, PARTITIONS)
    ends = stack.end_offsets()
    first_listen, second_listen = (f"127.0.0.1:{free_port()}" for _ in range(2))
    first = procs.supervisor(
        stack.env(SUPERVISOR_LISTEN=first_listen, **BACKPRESSURE), name="first"
    )
    stalled = procs.worker(
        stack.env(SUPERVISOR_GRPC_ADDR=first_listen, **SLOW_WORKER), name="w-first"
    )
    first.wait_workers(1)
    wait_until(
        lambda: first.records_done() > 0,
        60,
        interval=0.05,
        message=lambda: f"the first supervisor moved nothing: {first.status()}",
    )
    # Its worker stopped, the first fills its pending bound and stays paused.
    os.kill(stalled.pid, signal.SIGSTOP)
    try:
        wait_until(
            lambda: bool(first.status()["paused"]),
            60,
            interval=0.05,
            message=lambda: f"backpressure never paused the first supervisor: {first.status()}",
        )
        # A second member joins while the first is paused: the group splits the partitions.
        second = procs.supervisor(
            stack.env(SUPERVISOR_LISTEN=second_listen, **BACKPRESSURE),
            name="second",
            ready=False,
        )
        procs.worker(stack.env(SUPERVISOR_GRPC_ADDR=second_listen, **SLOW_WORKER), name="w-second")
        wait_until(
            lambda: len(first.status()["assigned"]) < PARTITIONS and second.is_ready(),
            90,
            interval=0.1,
            message=lambda: f"no rebalance: first {first.status()}",
        )
    finally:
        os.kill(stalled.pid, signal.SIGCONT)
    kept = sorted(first.status()["assigned"])
    # Both keep going: every partition, the first's included, reaches its end.
    stack.wait_committed_at_end(240, ends)
    assert first.terminate(timeout=60) == 0, first.tail()
    assert second.terminate(timeout=60) == 0, second.tail()
    assert_committed_at_end(stack.committed(), ends)

    audit = audit_topics(stack.bootstrap, stack.topics.input, stack.topics.output, stack.topics.dlq)
    print(f"rebalance while paused: the first kept {kept}; {audit.summary()}")
    # Redone: at most what the stopped worker held when its partitions were revoked.
    assert_accounted(audit, COUNT, 2 * 100)
