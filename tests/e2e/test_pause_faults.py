"""SIGSTOP faults at least once (issue 12): a worker frozen past its task lease, and one of
two supervisors frozen past its Kafka session timeout.

A frozen process is not a dead one: it wakes up later holding state the rest of the
system has moved past. The worker's late acks must be ignored (its tasks went to
another worker), and the supervisor's stale offsets must never be committed (its
partitions went to the other supervisor). Each test ends with every input accounted
for, nothing lost, and duplicates within what the frozen process held at the fault.
(The exactly-once suite has its own worker-past-its-lease test, with zero duplicates.)
"""

from __future__ import annotations

import itertools
import os
import signal
import struct
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.support.audit import assert_accounted, assert_committed_at_end, audit_topics
from tests.support.deadline import wait_until
from tests.support.procs import Proc, Processes, Stack, SupervisorProc, produce_demo
from tests.support.topics import read_all

pytestmark = pytest.mark.kafka

BATCH = 100
INFLIGHT = 2

SLOW_WORKER = {
    "MAX_INFLIGHT": INFLIGHT,
    "WORKER_PROCESSOR": "tests.support.processors:slow",
    "SLOW_TASK_SECONDS": "0.05",
}


@contextmanager
def stopped(proc: Proc) -> Iterator[None]:
    """SIGSTOP ``proc`` for the block; SIGCONT on the way out, whatever happens."""
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        if proc.alive():
            os.kill(proc.pid, signal.SIGCONT)


def _failures(sup: SupervisorProc) -> dict[str, int]:
    failures: dict[str, int] = sup.status()["events"]["failures"]
    return failures


def test_worker_stopped_past_its_lease_its_tasks_go_to_another_worker(
    procs: Processes, stack: Stack
) -> None:
    count, partitions = 8_000, 3
    produce_demo(procs, stack, count, partitions)
    ends = stack.end_offsets()
    # A short lease, so the frozen worker outlives it; gRPC keepalive (~15 s) would
    # notice it too, later: the lease is what this test is about.
    sup = procs.supervisor(stack.env(BATCH_MAX_RECORDS=BATCH, LEASE_TIMEOUT_S=3))
    env = {"SUPERVISOR_GRPC_ADDR": sup.grpc_addr, **SLOW_WORKER}
    sleeper = procs.worker(stack.env(**env, WORKER_ID="sleeper"), name="sleeper")
    other = procs.worker(stack.env(**env, WORKER_ID="other"), name="other")
    sup.wait_workers(2)

    def sleeper_holds_tasks() -> bool:
        views = {w["id"]: w for w in sup.workers()}
        view = views.get("sleeper", {})
        return sup.records_done() >= count // 8 and view.get("in_flight", 0) > 0

    wait_until(sleeper_holds_tasks, 60, interval=0.02, message=lambda: f"{sup.status()}")
    with stopped(sleeper):
        assert sup.records_done() < count, "the stream was over before the stop"
        # Past the lease: the tasks it holds are requeued and go to the other worker.
        wait_until(
            lambda: (
                _failures(sup).get("lease-expired", 0) >= 1
                and sup.status()["events"]["redelivered"] >= 1
            ),
            60,
            interval=0.1,
            message=lambda: f"no lease expired while the worker was stopped: {sup.status()}",
        )
        at_expiry = sup.status()["events"]
    # Awake again, it finishes what it held and acks: those acks come too late.
    stack.wait_committed_at_end(120, ends)
    status = sup.status()
    assert sleeper.alive(), sleeper.tail()
    assert other.alive(), other.tail()
    assert sup.terminate(timeout=60) == 0, sup.tail()
    assert_committed_at_end(stack.committed(), ends)
    for worker in (sleeper, other):
        assert worker.terminate(timeout=60) == 0, worker.tail()
    assert "ProtocolViolation" not in sup.log(), sup.tail()

    audit = audit_topics(stack.bootstrap, stack.topics.input, stack.topics.output, stack.topics.dlq)
    # It never holds more than its credit in tasks of at most BATCH records.
    bound = INFLIGHT * BATCH
    events = status["events"]
    print(
        f"FAULT worker SIGSTOP past lease (at least once): records={len(audit.inputs)} "
        f"lost={len(audit.lost)} duplicates={audit.duplicates} bound={bound}; "
        f"lease-expired={events['failures'].get('lease-expired', 0)} "
        f"worker-lost={events['failures'].get('worker-lost', 0)} "
        f"late_acks={events['late_acks']} redelivered={events['redelivered']} "
        f"(at expiry {at_expiry}); {audit.summary()}"
    )
    assert_accounted(audit, count, bound, dead_allowed=False)


# -- the group's commit log ----------------------------------------------------------


def _string(data: bytes, at: int) -> tuple[str, int]:
    (size,) = struct.unpack_from(">h", data, at)
    return data[at + 2 : at + 2 + size].decode(), at + 2 + size


def commit_log(stack: Stack) -> dict[int, list[int]]:
    """Every offset commit of the test's group on its input, in the order Kafka took them.

    Read from ``__consumer_offsets``: a key of version 0 or 1 is an offset commit
    (group, topic, partition); its value starts with a version (int16) and the offset
    (int64) in every version. A group's commits all land in one partition of that topic,
    so its log order is the order the coordinator accepted them.
    """
    log: dict[int, list[int]] = {}
    for record in read_all(stack.bootstrap, "__consumer_offsets"):
        key, value = record.key, record.value
        if key is None or value is None or len(key) < 2:
            continue
        (version,) = struct.unpack_from(">h", key, 0)
        if version not in (0, 1):
            continue  # group metadata, not an offset commit
        group, at = _string(key, 2)
        topic, at = _string(key, at)
        if group != stack.topics.group or topic != stack.topics.input:
            continue
        (partition,) = struct.unpack_from(">i", key, at)
        (offset,) = struct.unpack_from(">q", value, 2)
        log.setdefault(partition, []).append(offset)
    return log


def _assigned(sup: SupervisorProc) -> set[int]:
    return set(sup.status()["assigned"])


def test_supervisor_stopped_past_its_session_timeout_commits_nothing_after_it_wakes(
    procs: Processes, stack: Stack
) -> None:
    count, more, partitions = 8_000, 4_000, 4
    produce_demo(procs, stack, count, partitions)
    ends = stack.end_offsets()
    env = stack.env(BATCH_MAX_RECORDS=BATCH, COMMIT_INTERVAL_MS=200)
    # B first, then A: A's first generation is the split, so everything A ever consumed
    # belongs to the partitions it holds when it is frozen.
    b = procs.supervisor(env, name="sup-b")
    a = procs.supervisor(env, name="sup-a", ready=False)
    everything = set(range(partitions))

    def split() -> bool:
        owned_a, owned_b = _assigned(a), _assigned(b)
        return bool(owned_a) and bool(owned_b) and owned_a | owned_b == everything

    wait_until(split, 60, interval=0.2, message=lambda: f"{a.status()} / {b.status()}")
    owned_a = _assigned(a)
    assert not owned_a & _assigned(b)
    worker_a = procs.worker(
        stack.env(SUPERVISOR_GRPC_ADDR=a.grpc_addr, **SLOW_WORKER, WORKER_ID="worker-a"),
        name="worker-a",
    )
    worker_b = procs.worker(
        stack.env(SUPERVISOR_GRPC_ADDR=b.grpc_addr, **SLOW_WORKER, WORKER_ID="worker-b"),
        name="worker-b",
    )
    wait_until(
        lambda: (
            a.records_done() >= 500 and b.records_done() >= 500 and a.status()["inflight_tasks"] > 0
        ),
        60,
        interval=0.02,
        message=lambda: f"both supervisors should make progress: {a.status()} / {b.status()}",
    )
    assigned_logged = a.log().count("partitions assigned")
    with stopped(a):
        # B learns of A's absence only through the group: after the session timeout
        # (10 s), the coordinator evicts A and B gets every partition. Until B holds
        # them, only A commits A's partitions: the last read before is A's last commit.
        last_commit: dict[int, int] = {}

        def taken_over() -> bool:
            committed = stack.committed()
            if _assigned(b) == everything:
                return True
            last_commit.update(committed)
            return False

        wait_until(
            taken_over,
            90,
            interval=0.2,
            message=lambda: f"B never took over A's partitions: {b.status()}",
        )
        at_stop = {p: last_commit.get(p, 0) for p in owned_a}
        assert any(at_stop[p] < ends[p] for p in owned_a), "A's work was all done"
        # B finishes the whole input, A's former partitions included, while A sleeps.
        stack.wait_committed_at_end(120, ends)
        log_before = commit_log(stack)
    # A wakes: everything is committed at the end, so any commit of its stale offsets
    # would move a partition backwards. It must lose its partitions and rejoin.
    wait_until(
        lambda: (
            a.log().count("partitions assigned") > assigned_logged
            and _assigned(a)
            and _assigned(a) | _assigned(b) == everything
            and not _assigned(a) & _assigned(b)
        ),
        90,
        interval=0.2,
        message=lambda: f"A never rejoined: {a.status()} / {b.status()}\n{a.tail()}",
    )
    consumed_by_a = a.metric("supervisor_records_consumed_total") or 0.0
    # What the group took between A's wake-up and its rejoin: only the end offsets
    # again (B's commit on the rejoin's revoke, A's first commit of its new generation).
    log_after = commit_log(stack)
    since_wake = {p: offsets[len(log_before.get(p, [])) :] for p, offsets in log_after.items()}
    stale = {p: [o for o in offsets if o != ends[p]] for p, offsets in since_wake.items()}
    assert not any(stale.values()), f"commits after A woke, below the end {ends}: {stale}"
    assert stack.committed() == ends
    assert "partitions lost" in a.log() or "partitions revoked" in a.log(), a.tail()

    # Both go on: a second wave is split between them and finished.
    done_a, done_b = a.records_done(), b.records_done()
    produce_demo(procs, stack, more, partitions, seed=8)
    final = stack.end_offsets()
    stack.wait_committed_at_end(120, final)
    assert a.records_done() > done_a, f"A did nothing after it rejoined: {a.status()}"
    assert b.records_done() > done_b, f"B did nothing after A rejoined: {b.status()}"
    for sup in (a, b):
        assert sup.terminate(timeout=60) == 0, sup.tail()
    assert_committed_at_end(stack.committed(), final)
    for worker in (worker_a, worker_b):
        assert worker.terminate(timeout=60) == 0, worker.tail()

    # No commit of the group ever moved a partition backwards.
    regressions = {
        p: [(x, y) for x, y in itertools.pairwise(offsets) if y < x]
        for p, offsets in commit_log(stack).items()
    }
    assert not any(regressions.values()), f"committed offsets went backwards: {regressions}"

    audit = audit_topics(stack.bootstrap, stack.topics.input, stack.topics.output, stack.topics.dlq)
    # In flight in A: what it consumed above its last commit (its one generation holds
    # exactly its partitions, from offset 0). B's own in-flight tasks at the takeover
    # (eager rebalancing revokes its partitions too) are at most its worker's credit.
    in_a = int(consumed_by_a) - sum(at_stop.values())
    bound = in_a + INFLIGHT * BATCH
    dup_partitions = sorted({s[0] for s, n in (audit.out_count + audit.dlq_count).items() if n > 1})
    print(
        f"FAULT supervisor SIGSTOP past session timeout: records={len(audit.inputs)} "
        f"lost={len(audit.lost)} duplicates={audit.duplicates} bound={bound} "
        f"(in flight in A {in_a} + B's credit {INFLIGHT * BATCH}); "
        f"A owned {sorted(owned_a)}, committed at {at_stop}; "
        f"duplicates in {dup_partitions}, commits after wake {since_wake}; {audit.summary()}"
    )
    assert_accounted(audit, count + more, bound, dead_allowed=False)
