"""PROCESSING_GUARANTEE=exactly_once through real crashes (docs/exactly-once.md).

Every test reads OUTPUT_TOPIC and the DLQ with read_committed (the audit's reader) and
holds duplicates to zero, not to a bound: SIGKILLed workers, a SIGKILLed and restarted
supervisor, a second supervisor joining (a rebalance), a worker SIGSTOPped past its
lease, and malformed records.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.support.audit import assert_committed_at_end, audit_topics
from tests.support.deadline import wait_until
from tests.support.procs import Proc, Processes, Stack, SupervisorProc, free_port, produce_demo

pytestmark = pytest.mark.kafka

# STREAMPLANE_EOS_RECORDS=1000000 runs the kill and rebalance tests at the full
# size (the kill test took about two minutes here); the default keeps `make test` within
# its budget.
COUNT = int(os.environ.get("STREAMPLANE_EOS_RECORDS", "60000"))
# Waits of the two COUNT-sized tests grow with COUNT: at 1M a supervisor sharing the
# group moves ~4k records/s with these small tasks, past fixed two-minute waits.
WAIT_S = max(120.0, COUNT / 2_000)
PARTITIONS = 6
BATCH = 200

EOS = {"PROCESSING_GUARANTEE": "exactly_once", "BATCH_MAX_RECORDS": BATCH}
SLOW_WORKER = {
    "MAX_INFLIGHT": 4,
    "WORKER_PROCESSOR": "tests.support.processors:slow",
    "SLOW_TASK_SECONDS": "0.01",
}


def _audit_exactly_once(stack: Stack, count: int) -> str:
    audit = audit_topics(stack.bootstrap, stack.topics.input, stack.topics.output, stack.topics.dlq)
    summary = audit.summary()
    assert len(audit.inputs) == count, summary
    assert not audit.lost, summary
    assert not audit.bogus, summary
    assert audit.duplicates == 0, summary
    assert not audit.in_both, summary
    return summary


def _workers(procs: Processes, stack: Stack, listen: str, n: int, **extra: object) -> list[Proc]:
    env = stack.env(SUPERVISOR_GRPC_ADDR=listen, **SLOW_WORKER, **extra)
    return [procs.worker(env, name="worker") for _ in range(n)]


def _done(sup: SupervisorProc) -> int:
    try:
        return sup.records_done()
    except OSError:
        return 0


def test_worker_and_supervisor_sigkills_write_each_record_exactly_once(
    procs: Processes, stack: Stack, record_property: pytest.RecordProperty
) -> None:
    produce_demo(procs, stack, COUNT, PARTITIONS)
    ends = stack.end_offsets()
    listen = f"127.0.0.1:{free_port()}"
    env = stack.env(SUPERVISOR_LISTEN=listen, **EOS)
    sup = procs.supervisor(env)
    workers = _workers(procs, stack, listen, 2)
    sup.wait_workers(2)

    # Three worker SIGKILLs, each mid-transaction (tasks in flight), each replaced.
    for round_ in range(1, 4):
        target = COUNT * round_ // 6
        wait_until(
            lambda t=target: _done(sup) >= t and sup.status()["inflight_tasks"] > 0,
            WAIT_S,
            interval=0.02,
            message=lambda: f"no progress: {sup.status()}",
        )
        workers.pop(0).kill()
        workers += _workers(procs, stack, listen, 1)
    assert sum(stack.committed().values()) < COUNT, "the stream ended before the kills"

    # Then the supervisor: SIGKILL mid-stream and a restart on the same port.
    wait_until(lambda: _done(sup) >= COUNT * 2 // 3, WAIT_S, interval=0.02)
    sup.kill()
    at_kill = sum(stack.committed().values())
    sup = procs.supervisor(env, timeout=90)
    stack.wait_committed_at_end(2 * WAIT_S, ends)
    status = sup.status()
    assert sup.terminate(timeout=60) == 0, sup.tail()
    for worker in workers:
        assert worker.terminate(timeout=60) == 0, worker.tail()
    assert_committed_at_end(stack.committed(), ends)

    summary = _audit_exactly_once(stack, COUNT)
    record_property("duplicates", 0)
    print(f"exactly_once, 3 worker kills + supervisor kill at {at_kill}: {summary}; {status}")


def test_rebalance_to_a_second_supervisor_writes_each_record_exactly_once(
    procs: Processes, stack: Stack
) -> None:
    produce_demo(procs, stack, COUNT, PARTITIONS)
    ends = stack.end_offsets()
    first_listen, second_listen = (f"127.0.0.1:{free_port()}" for _ in range(2))
    first = procs.supervisor(stack.env(SUPERVISOR_LISTEN=first_listen, **EOS), name="first")
    _workers(procs, stack, first_listen, 2)
    first.wait_workers(2)
    wait_until(lambda: _done(first) >= COUNT // 4, WAIT_S, interval=0.02)

    # A second member joins: the group rebalances while the first one's tasks are in
    # flight; what they commit after it is refused, and the new owners redo it once.
    second = procs.supervisor(
        stack.env(SUPERVISOR_LISTEN=second_listen, **EOS), name="second", ready=False
    )
    _workers(procs, stack, second_listen, 1)
    wait_until(lambda: _done(first) >= COUNT // 2, WAIT_S, interval=0.02)
    # Then one of the two dies: the survivor takes every partition.
    first.kill()
    stack.wait_committed_at_end(2 * WAIT_S, ends)
    assert second.terminate(timeout=60) == 0, second.tail()

    print(f"exactly_once, rebalance + kill: {_audit_exactly_once(stack, COUNT)}")


def test_worker_stopped_past_its_lease_is_fenced_and_writes_nothing_visible(
    procs: Processes, stack: Stack
) -> None:
    count = 6_000
    produce_demo(procs, stack, count, PARTITIONS)
    ends = stack.end_offsets()
    listen = f"127.0.0.1:{free_port()}"
    sup = procs.supervisor(stack.env(SUPERVISOR_LISTEN=listen, LEASE_TIMEOUT_S=3, **EOS))
    # The sleeper's tasks take long enough that SIGSTOP lands mid-task.
    sleeper = procs.worker(
        stack.env(
            SUPERVISOR_GRPC_ADDR=listen,
            WORKER_ID="sleeper",
            MAX_INFLIGHT=4,
            WORKER_PROCESSOR="tests.support.processors:slow",
            SLOW_TASK_SECONDS="0.3",
        ),
        name="sleeper",
    )
    sup.wait_workers(1)
    wait_until(
        lambda: any(w["in_flight"] > 0 for w in sup.workers()) and _done(sup) > 0,
        60,
        interval=0.02,
    )
    os.kill(sleeper.pid, signal.SIGSTOP)
    try:
        _workers(procs, stack, listen, 1)
        # The lease runs out: the session is given up and its transactional id fenced.
        wait_until(
            lambda: sup.metric('supervisor_transactions_total{outcome="fenced"}'),
            60,
            interval=0.1,
            message=lambda: f"no fence: {sup.status()}",
        )
    finally:
        os.kill(sleeper.pid, signal.SIGCONT)
    stack.wait_committed_at_end(180, ends)
    # The sleeper woke with a transaction it can no longer commit (fenced when it tried,
    # aborted when it first read that its session was given up), then rejoined.
    time.sleep(1)
    assert sup.terminate(timeout=60) == 0, sup.tail()
    assert sleeper.terminate(timeout=60) == 0, sleeper.tail()
    log = sleeper.log()
    assert "fenced" in log or "transaction aborted" in log, sleeper.tail()
    assert "Unexpected" not in sup.log(), sup.tail()
    print(f"exactly_once, worker stopped past its lease: {_audit_exactly_once(stack, count)}")


def test_malformed_records_reach_the_dead_letter_topic_exactly_once(
    procs: Processes, stack: Stack
) -> None:
    count = 20_000
    _, bad = produce_demo(procs, stack, count, PARTITIONS, bad_fraction=0.01)
    ends = stack.end_offsets()
    listen = f"127.0.0.1:{free_port()}"
    sup = procs.supervisor(stack.env(SUPERVISOR_LISTEN=listen, **EOS))
    workers = _workers(procs, stack, listen, 2)
    sup.wait_workers(2)
    wait_until(lambda: _done(sup) >= count // 3, 120, interval=0.02)
    workers[0].kill()
    _workers(procs, stack, listen, 1)
    stack.wait_committed_at_end(180, ends)
    assert sup.terminate(timeout=60) == 0, sup.tail()

    audit = audit_topics(stack.bootstrap, stack.topics.input, stack.topics.output, stack.topics.dlq)
    assert len(audit.dead_lettered) == bad, audit.summary()
    print(f"exactly_once, malformed: {_audit_exactly_once(stack, count)}")
