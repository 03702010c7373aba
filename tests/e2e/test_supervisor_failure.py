"""SIGKILL a supervisor mid-stream: a restarted one, or a second member of the group,
resumes from the committed offsets and nothing is lost; duplicates are only re-reads.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from streamplane.platform.kafka.consumer import GroupConsumer
from streamplane.platform.supervisor import completed_offsets
from tests.support.audit import (
    assert_committed_at_end,
    audit_topics,
    source_of,
    uncovered_below,
)
from tests.support.deadline import wait_until
from tests.support.procs import Processes, Stack, free_port, produce_demo
from tests.support.topics import read_all

pytestmark = pytest.mark.kafka

BATCH = 100

SLOW_WORKER = {
    "MAX_INFLIGHT": 2,
    "WORKER_PROCESSOR": "tests.support.processors:slow",
    "SLOW_TASK_SECONDS": "0.05",
}


def test_sigkill_supervisor_mid_stream_then_restart(
    procs: Processes, stack: Stack, record_property: pytest.RecordProperty
) -> None:
    count = 8_000
    produce_demo(procs, stack, count, partitions=3)
    ends = stack.end_offsets()
    # A fixed port: the workers keep dialling the same address across the restart.
    listen = f"127.0.0.1:{free_port()}"
    env = stack.env(SUPERVISOR_LISTEN=listen, BATCH_MAX_RECORDS=BATCH, COMMIT_INTERVAL_MS=200)
    first = procs.supervisor(env, name="supervisor")
    workers = [
        procs.worker(stack.env(SUPERVISOR_GRPC_ADDR=listen, **SLOW_WORKER)) for _ in range(2)
    ]
    first.wait_workers(2)
    wait_until(
        lambda: first.records_done() >= count // 4 and stack.committed(),
        60,
        interval=0.05,
        message=lambda: f"no progress before the kill: {first.status()}",
    )
    first.kill()
    at_kill = stack.committed()
    assert sum(at_kill.values()) < count, "the stream was over before the kill"
    # The dead supervisor's commits never passed an unwritten record.
    outputs = read_all(stack.bootstrap, stack.topics.output)
    gaps = uncovered_below(at_kill, outputs, stack.topics.input)
    assert not gaps, f"committed past unwritten records: {gaps}"

    second = procs.supervisor(env, name="supervisor", timeout=90)
    second.wait_workers(2, timeout=60)
    stack.wait_committed_at_end(120, ends)
    assert second.terminate(timeout=60) == 0, second.tail()
    assert_committed_at_end(stack.committed(), ends)
    for worker in workers:
        assert worker.alive(), worker.tail()
        assert worker.terminate(timeout=60) == 0, worker.tail()

    audit = audit_topics(stack.bootstrap, stack.topics.input, stack.topics.output, stack.topics.dlq)
    record_property("duplicates", audit.duplicates)
    reread = sum(end - at_kill.get(p, 0) for p, end in ends.items())
    print(f"supervisor SIGKILL+restart: re-read bound {reread}; {audit.summary()}")
    assert len(audit.inputs) == count
    assert not audit.lost, audit.summary()
    assert not audit.bogus
    # A duplicate can only be a record above the commit at the kill, read again.
    assert audit.duplicates <= reread, audit.summary()


def test_sigterm_supervisor_mid_stream_drains_then_restart_resumes(
    procs: Processes, stack: Stack, record_property: pytest.RecordProperty
) -> None:
    """Graceful stop (DESIGN 3.8): in-flight work finishes and is committed, so a restarted
    supervisor picks up exactly where the first stopped: no record written twice.
    """
    count = 8_000
    produce_demo(procs, stack, count, partitions=3)
    ends = stack.end_offsets()
    listen = f"127.0.0.1:{free_port()}"
    # A small pending bound keeps most of the input unconsumed at the stop, so the drain
    # finishes a part and the restart must pick up the rest.
    env = stack.env(SUPERVISOR_LISTEN=listen, BATCH_MAX_RECORDS=BATCH, MAX_PENDING_RECORDS=800)
    first = procs.supervisor(env, name="supervisor")
    workers = [
        procs.worker(stack.env(SUPERVISOR_GRPC_ADDR=listen, **SLOW_WORKER)) for _ in range(2)
    ]
    first.wait_workers(2)
    wait_until(
        lambda: first.records_done() >= count // 4 and first.status()["inflight_tasks"] > 0,
        60,
        interval=0.05,
        message=lambda: f"no progress before the stop: {first.status()}",
    )
    assert first.terminate(timeout=60) == 0, first.tail()
    at_stop = stack.committed()
    assert sum(at_stop.values()) < count, "the stream was over before the stop"
    outputs = read_all(stack.bootstrap, stack.topics.output)
    gaps = uncovered_below(at_stop, outputs, stack.topics.input)
    assert not gaps, f"committed past unwritten records: {gaps}"
    # A graceful stop finishes everything it consumed before the final commit, so nothing
    # above the commit was written and the restart writes nothing twice.
    written = {source_of(r, stack.topics.input) for r in outputs}
    above = sorted(s for s in written if s is not None and s[1] >= at_stop.get(s[0], 0))

    second = procs.supervisor(env, name="supervisor", timeout=90)
    second.wait_workers(2, timeout=60)
    stack.wait_committed_at_end(120, ends)
    status = second.status()
    assert second.terminate(timeout=60) == 0, second.tail()
    for worker in workers:
        assert worker.terminate(timeout=60) == 0, worker.tail()

    audit = audit_topics(stack.bootstrap, stack.topics.input, stack.topics.output, stack.topics.dlq)
    record_property("duplicates", audit.duplicates)
    print(
        f"supervisor SIGTERM+restart: {len(above)} written above the final commit; "
        f"events after restart {status['events']}; {audit.summary()}"
    )
    assert not audit.lost, audit.summary()
    assert not audit.bogus
    assert not above, f"written above the final commit: {above[:10]}"
    assert audit.duplicates == 0, audit.summary()


def test_two_supervisors_one_group_sigkill_one(
    procs: Processes, stack: Stack, record_property: pytest.RecordProperty
) -> None:
    count, partitions = 8_000, 4
    produce_demo(procs, stack, count, partitions)
    ends = stack.end_offsets()
    env = stack.env(BATCH_MAX_RECORDS=BATCH, COMMIT_INTERVAL_MS=200)
    a = procs.supervisor(env, name="sup-a")
    b = procs.supervisor(env, name="sup-b", ready=False)

    def split() -> bool:
        owned_a = set(a.status()["assigned"])
        owned_b = set(b.status()["assigned"])
        return bool(owned_a) and bool(owned_b) and owned_a | owned_b == set(range(partitions))

    # Workers start only once the group has split the partitions, so both take work.
    wait_until(split, 60, interval=0.2, message=lambda: f"{a.status()} / {b.status()}")
    owned_a = set(a.status()["assigned"])
    assert not owned_a & set(b.status()["assigned"])
    procs.worker(stack.env(SUPERVISOR_GRPC_ADDR=a.grpc_addr, **SLOW_WORKER), name="worker-a")
    worker_b = procs.worker(
        stack.env(SUPERVISOR_GRPC_ADDR=b.grpc_addr, **SLOW_WORKER), name="worker-b"
    )
    wait_until(
        lambda: a.records_done() >= 500 and b.records_done() >= 500,
        60,
        interval=0.05,
        message=lambda: f"both supervisors should make progress: {a.status()} / {b.status()}",
    )
    a.kill()
    at_kill = stack.committed()
    assert any(at_kill.get(p, 0) < ends[p] for p in owned_a), "A's partitions already done"

    # B takes over A's partitions once the group notices A is gone.
    wait_until(
        lambda: set(b.status()["assigned"]) == set(range(partitions)),
        60,
        interval=0.2,
        message=lambda: f"B never took over: {b.status()}",
    )
    stack.wait_committed_at_end(120, ends)
    assert b.terminate(timeout=60) == 0, b.tail()
    assert_committed_at_end(stack.committed(), ends)
    assert worker_b.terminate(timeout=60) == 0, worker_b.tail()

    audit = audit_topics(stack.bootstrap, stack.topics.input, stack.topics.output, stack.topics.dlq)
    record_property("duplicates", audit.duplicates)
    # Eager rebalancing revokes B's partitions too, so any partition may be re-read, but
    # never below the offsets committed when A died.
    reread = sum(end - at_kill.get(p, 0) for p, end in ends.items())
    dup_partitions = sorted({s[0] for s, n in (audit.out_count + audit.dlq_count).items() if n > 1})
    print(
        f"two supervisors, SIGKILL one: A owned {sorted(owned_a)}, duplicates in partitions "
        f"{dup_partitions}, re-read bound {reread}; {audit.summary()}"
    )
    assert len(audit.inputs) == count
    assert not audit.lost, audit.summary()
    assert not audit.bogus
    assert audit.duplicates <= reread, audit.summary()


def _commits_with_metadata(stack: Stack) -> dict[int, tuple[int, str]]:
    """The group's commits of the input, with their metadata (read without joining)."""
    consumer = GroupConsumer({**stack.conf, "group.id": stack.topics.group})
    try:
        tps = [(stack.topics.input, p) for p in stack.end_offsets()]
        return {p: point for (_, p), point in consumer.commits(tps, timeout=30).items()}
    finally:
        consumer.close()


def test_after_a_supervisor_crash_only_what_was_in_flight_is_redone(
    procs: Processes, stack: Stack, record_property: pytest.RecordProperty
) -> None:
    """Issue 12.4: a stalled task low in a partition holds its committed offset back while
    later tasks complete; the commit's metadata lists those, so a restart redoes only the
    records that were in flight, not everything above the committed offset.
    """
    count = 12_000
    produce_demo(procs, stack, count, partitions=2)
    ends = stack.end_offsets()
    listen = f"127.0.0.1:{free_port()}"
    env = stack.env(SUPERVISOR_LISTEN=listen, BATCH_MAX_RECORDS=BATCH, COMMIT_INTERVAL_MS=200)
    first = procs.supervisor(env, name="supervisor")
    staller = procs.worker(stack.env(SUPERVISOR_GRPC_ADDR=listen, **SLOW_WORKER), name="staller")
    first.wait_workers(1)
    wait_until(lambda: first.workers()[0]["in_flight"] > 0, 30, interval=0.01)
    os.kill(staller.pid, signal.SIGSTOP)  # it holds its tasks, low in their partitions
    worker = procs.worker(stack.env(SUPERVISOR_GRPC_ADDR=listen, MAX_INFLIGHT=2))
    wait_until(
        lambda: first.records_done() >= count // 2,
        60,
        interval=0.05,
        message=lambda: f"no progress past the stalled tasks: {first.status()}",
    )
    time.sleep(1)  # a few commit intervals: the metadata reflects what is done
    first.kill()
    staller.kill()  # it never writes what it held
    at_kill = _commits_with_metadata(stack)
    completed = {
        (p, o)
        for p, (offset, metadata) in at_kill.items()
        for start, end in completed_offsets.decode(offset, metadata)
        for o in range(start, end)
    }
    assert completed, f"no completed offsets above the commits: {at_kill}"

    second = procs.supervisor(env, name="supervisor", timeout=90)
    stack.wait_committed_at_end(120, ends)
    skipped = second.metric("supervisor_records_skipped_total")
    assert second.terminate(timeout=60) == 0, second.tail()
    assert worker.terminate(timeout=60) == 0, worker.tail()

    audit = audit_topics(stack.bootstrap, stack.topics.input, stack.topics.output, stack.topics.dlq)
    record_property("duplicates", audit.duplicates)
    reread = sum(end - at_kill.get(p, (0, ""))[0] for p, end in ends.items())
    print(
        f"supervisor SIGKILL with a stalled task: {len(completed)} completed above the "
        f"commits, {skipped:.0f} skipped after the restart, old re-read bound {reread}; "
        f"{audit.summary()}"
    )
    assert not audit.lost, audit.summary()
    assert not audit.bogus
    assert skipped == len(completed)
    # What the metadata listed was never written again: a duplicate is a record that was
    # above the commit and not yet complete, i.e. in flight at the crash.
    seen = audit.out_count + audit.dlq_count
    twice = {src for src, n in seen.items() if n > 1}
    assert not twice & completed, sorted(twice & completed)[:10]
    assert audit.duplicates <= reread - len(completed), audit.summary()
