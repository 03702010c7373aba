"""Issue 16.1: under a sustained backlog every partition's committed offset advances.

A record without a readable tenant (the outside tester's malformed ones had none) falls
back to `default`: a rare tenant whose (tenant, partition) batch used to stay open for
as long as no worker had idle credit, which under a backlog is always. Its first record
held the partition's lowest outstanding offset, so the committed offset stood still
while the work behind it was done, and a crash then redid all of it.
"""

from __future__ import annotations

import time

import pytest

from streamplane.platform.kafka import admin
from streamplane.platform.kafka.producer import DurableProducer
from tests.support.procs import Processes, Stack, produce_demo

pytestmark = pytest.mark.kafka

RECORDS = 60_000
PARTITIONS = 3
# Enough done behind the malformed records to tell a stuck commit from a slow one.
DONE_BEFORE_CHECK = 15_000
DEADLINE_S = 180.0


def test_a_rare_tenant_does_not_pin_the_committed_offset_under_backlog(
    procs: Processes, stack: Stack
) -> None:
    conf = {"bootstrap.servers": stack.bootstrap}
    admin.ensure_topics(conf, {stack.topics.input: PARTITIONS})
    producer = DurableProducer(conf)
    for i in range(30):  # first in every partition: the lowest offsets are theirs
        producer.produce(stack.topics.input, b'{"no": "tenant"}', f"rare-{i}".encode())
    assert producer.flush(30) == 0
    written, _ = produce_demo(procs, stack, RECORDS, PARTITIONS)
    written += 30
    sup = procs.supervisor(stack.env())
    # A slow worker keeps every credit busy: the backlog outlasts the check.
    procs.worker(
        stack.env(
            SUPERVISOR_GRPC_ADDR=sup.grpc_addr,
            MAX_INFLIGHT=2,
            WORKER_PROCESSOR="tests.support.processors:slow",
            SLOW_TASK_SECONDS="0.05",
        )
    )
    sup.wait_workers(1)
    deadline = time.monotonic() + DEADLINE_S
    while True:
        assert sup.alive(), sup.tail()
        assert time.monotonic() < deadline, "the pipeline made no progress"
        done = sup.records_done()
        committed = stack.committed()
        # Bounded by what is in flight or batched, not by the backlog: at most the open
        # batches, the queue and the inflight tasks lie above each committed offset.
        if done >= DONE_BEFORE_CHECK and sum(committed.values()) >= done // 2:
            break
        # Before the fix the committed offsets stood at the rare records until the
        # backlog was gone: reaching the end first is the failure.
        assert done < written * 0.9, (committed, done, sup.status())
        time.sleep(0.5)  # polling interval
    assert set(committed) == set(range(PARTITIONS)), committed
