"""A worker cut off the network for 30 s (issue 12): its tasks go to another worker.

The test makes a network namespace and a veth pair on a private /30 (addresses that
exist only in this machine's own namespaces) and runs one worker inside it. That
worker reaches the session broker and the supervisor through two forwarders
(:mod:`tests.support.forward`): one in the namespace, from its loopback to the host
end of the veth pair, and one here, from that address to this loopback; the broker
advertises 127.0.0.1, so the worker dials the same addresses as a worker here and every
byte crosses the veth link. A second worker runs here, outside. Then the host end goes
down for 30 s: no FIN, no RST, the packets just stop, and only gRPC keepalive (or the
task lease) can tell. The supervisor must requeue the cut worker's tasks to the other
one; nothing may be lost, duplicates stay within what the cut worker held, and once
the link is back the cut worker reconnects (or exits cleanly).

Needs root and ``ip`` (iproute2); skipped without them, failed under
``STREAMPLANE_REQUIRE_ALL=1``. The namespace and the veth pair are always removed.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator

import pytest

from tests.support import netns
from tests.support.audit import assert_accounted, assert_committed_at_end, audit_topics
from tests.support.deadline import wait_until
from tests.support.procs import Processes, Stack, SupervisorProc, produce_demo

pytestmark = pytest.mark.kafka

COUNT = 8_000
PARTITIONS = 3
BATCH = 100
INFLIGHT = 2
CUT_S = 30.0
LEASE_S = 10

SLOW_WORKER = {
    "MAX_INFLIGHT": INFLIGHT,
    "WORKER_PROCESSOR": "tests.support.processors:slow",
    "SLOW_TASK_SECONDS": "0.1",
}


@pytest.fixture
def namespace(procs: Processes) -> Iterator[netns.Namespace]:
    """A namespace joined by a veth pair; what runs in it is stopped before it goes."""
    reason = netns.unavailable()
    if reason is not None:
        if os.environ.get("STREAMPLANE_REQUIRE_ALL") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    with netns.veth_namespace() as ns:
        try:
            yield ns
        finally:
            procs.stop_all()


def _undelivered(log: str) -> str:
    """What the worker's last stop line says it could not deliver."""
    found = re.findall(r"worker stopped .*?(undelivered=\d+)", log)
    return found[-1] if found else "no stop line"


def _session_of(sup: SupervisorProc, worker_id: str) -> str | None:
    """The session of a connected worker, or None when it is not connected."""
    sessions = [str(w["session"]) for w in sup.workers() if w["id"] == worker_id]
    return sessions[0] if sessions else None


def test_worker_cut_off_for_30_s_its_tasks_go_to_the_other_worker(
    procs: Processes, stack: Stack, namespace: netns.Namespace
) -> None:
    host, _, kafka_port = stack.bootstrap.partition(":")
    if host != "127.0.0.1" or "," in kafka_port:
        pytest.skip(f"the forwarders bridge a loopback broker, not {stack.bootstrap}")
    produce_demo(procs, stack, COUNT, PARTITIONS)
    ends = stack.end_offsets()
    # A lease well inside the cut. gRPC keepalive is meant to notice a cut link within
    # ~15 s (platform/rpc.py), but here both ends noticed only after 60 s (gRPC's own
    # ping timeout), past a 30 s cut: the lease is what requeues within it.
    sup = procs.supervisor(stack.env(BATCH_MAX_RECORDS=BATCH, LEASE_TIMEOUT_S=LEASE_S))
    netns.forwarders(procs, namespace, [int(kafka_port), sup.grpc_port])
    env = {"SUPERVISOR_GRPC_ADDR": sup.grpc_addr, **SLOW_WORKER}
    cut = netns.worker_in(procs, namespace, stack.env(**env), name="cut")
    other = procs.worker(stack.env(**env, WORKER_ID="other"), name="other")
    sup.wait_workers(2, timeout=60)

    def cut_holds_tasks() -> bool:
        views = {w["id"]: w for w in sup.workers()}
        view = views.get("cut", {})
        return bool(view.get("records_done", 0) > 0 and view.get("in_flight", 0) > 0)

    wait_until(cut_holds_tasks, 60, interval=0.02, message=lambda: f"{sup.status()}")
    session = _session_of(sup, "cut")
    namespace.cut()
    cut_at = time.monotonic()
    try:
        assert sup.records_done() < COUNT, "the stream was over before the cut"

        def requeued() -> bool:
            events = sup.status()["events"]
            failures = events["failures"]
            gone = failures.get("worker-lost", 0) + failures.get("lease-expired", 0)
            return bool(gone >= 1 and events["redelivered"] >= 1)

        wait_until(
            requeued,
            120,
            interval=0.2,
            message=lambda: f"the cut worker's tasks were never requeued: {sup.status()}",
        )
        at_requeue = sup.status()["events"]
        requeued_after = time.monotonic() - cut_at
        # The other worker finishes the stream while the cut one is away, so all the
        # cut one can still write is what it held (no new task of its expires while
        # its TCP connections back off after the cut).
        stack.wait_committed_at_end(120, ends)
        # The link stays down for the whole cut, however soon the supervisor noticed.
        time.sleep(max(0.0, CUT_S - (time.monotonic() - cut_at)))
        down_for = time.monotonic() - cut_at
    finally:
        namespace.mend()

    # Back on the network, the cut worker talks to the supervisor again: on a new
    # session, or on its old one once TCP's retransmissions get through (its acks of
    # the requeued tasks then arrive, too late to count); or it has exited cleanly.
    def back() -> bool:
        if not cut.alive():
            return True
        now = _session_of(sup, "cut")
        return now is not None and (now != session or sup.status()["events"]["late_acks"] > 0)

    wait_until(
        back,
        120,
        interval=0.2,
        message=lambda: f"the cut worker neither came back nor exited: {sup.status()}",
    )
    reconnected = cut.alive()
    if reconnected:
        after = _session_of(sup, "cut")
        outcome = "reconnected (new session)" if after != session else "resumed its session"
    else:
        outcome = f"exited rc {cut.returncode}"
    status = sup.status()
    assert other.alive(), other.tail()
    assert sup.terminate(timeout=60) == 0, sup.tail()
    assert_committed_at_end(stack.committed(), ends)
    if reconnected:
        assert cut.terminate(timeout=60) == 0, cut.tail()
    else:
        assert cut.returncode == 0, cut.tail()
    assert other.terminate(timeout=60) == 0, other.tail()

    audit = audit_topics(stack.bootstrap, stack.topics.input, stack.topics.output, stack.topics.dlq)
    # The cut worker never held more than its credit in tasks of at most BATCH records.
    bound = INFLIGHT * BATCH
    events = status["events"]
    print(
        f"FAULT worker network cut ({down_for:.0f} s, veth down): records={len(audit.inputs)} "
        f"lost={len(audit.lost)} duplicates={audit.duplicates} bound={bound}; "
        f"requeued after {requeued_after:.1f} s ({at_requeue['failures']}), "
        f"then {outcome}, {_undelivered(cut.log())}; "
        f"late_acks={events['late_acks']} redelivered={events['redelivered']}; "
        f"{audit.summary()}"
    )
    assert_accounted(audit, COUNT, bound, dead_allowed=False)
