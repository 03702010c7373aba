"""A hostile gRPC peer against a real supervisor on real Kafka (issue 12, fuzzing).

One supervisor, records waiting in its input topic, and a peer that says what no worker
says, one session after another: a message past the server's receive limit (64 MiB),
an Ack before its Hello, bytes that are no message, a duplicate Ack, credit of 2^32-1
(a negative number on the wire) and 10^9, a second Hello after withdrawing its credit,
and an OK ack that proves nothing. After each: the supervisor is alive, the hostile
stream was ended with an error, its tasks were taken back, and no committed offset
passed a record (nobody has written any). Then a real worker moves every record:
nothing lost, nothing doubled.

tests/e2e/test_protocol.py has one violation per test; this is the peer that tries
them all on one supervisor, with the sizes and numbers that break parsers.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from streamplane.runner.v1 import runner_pb2
from tests.e2e.test_protocol import RawSession
from tests.support.audit import assert_committed_at_end, audit_topics
from tests.support.deadline import wait_until
from tests.support.procs import Processes, Stack, SupervisorProc, produce_demo

pytestmark = pytest.mark.kafka

MAX_INFLIGHT = 4
MIB = 1024 * 1024
# rpc.MAX_MESSAGE_BYTES is the server's receive limit; one byte past it is enough, but
# the point is a peer that sends what it likes: 1 MiB past.
OVERSIZED = 65 * MIB
HAS_PROOF = "proof" in runner_pb2.Ack.DESCRIPTOR.fields_by_name
ENDED = (
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)


def _serialize(message: runner_pb2.WorkerMessage | bytes) -> bytes:
    return message if isinstance(message, bytes) else message.SerializeToString()


def _varint(value: int) -> bytes:
    value &= 2**64 - 1
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def credit_on_wire(value: int) -> bytes:
    """A Credit whose `available` varint is `value` as a peer encodes it (int64)."""
    inner = b"\x08" + _varint(value)
    return b"\x12" + _varint(len(inner)) + inner


def hello(max_inflight: int = MAX_INFLIGHT) -> runner_pb2.WorkerMessage:
    message = runner_pb2.WorkerMessage()
    message.hello.worker_id = "hostile"
    message.hello.node_id = "fuzz"
    message.hello.max_inflight = max_inflight
    message.hello.transport = runner_pb2.TRANSPORT_GRPC
    message.hello.engine = "polars"
    message.hello.version = "fuzz"
    return message


def ack(task_id: str, status: int, error: str = "") -> runner_pb2.WorkerMessage:
    message = runner_pb2.WorkerMessage()
    message.ack.task_id = task_id
    message.ack.status = status  # type: ignore[assignment]
    message.ack.error = error
    return message


class Hostile:
    """One session of the hostile peer, always closed."""

    def __init__(self, sup: SupervisorProc) -> None:
        self.sup = sup
        self.session = RawSession(sup.grpc_addr, _serialize)

    def __enter__(self) -> Hostile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.close()

    def send(self, message: runner_pb2.WorkerMessage | bytes) -> None:
        self.session.send(message)

    def tasks(self) -> list[runner_pb2.Task]:
        return self.session.tasks()

    def wait_tasks(self, count: int) -> list[runner_pb2.Task]:
        wait_until(
            lambda: len(self.tasks()) >= count or self.session.ended.is_set(),
            30,
            message=lambda: f"got {len(self.tasks())} tasks, want {count}",
        )
        assert not self.session.ended.is_set(), f"stream ended early: {self.session.error}"
        return self.tasks()

    def wait_held(self, count: int) -> None:
        """Wait until the supervisor lists this session holding `count` tasks."""
        wait_until(
            lambda: [w["in_flight"] for w in self.sup.workers()] == [count],
            30,
            message=lambda: f"workers {self.sup.workers()}, want one holding {count}",
        )

    def assert_ended(self) -> grpc.StatusCode:
        assert self.session.ended.wait(30), "the supervisor kept a hostile stream open"
        assert self.session.error is not None, "the stream must end with an error status"
        code: grpc.StatusCode = self.session.error.code()  # type: ignore[attr-defined]
        assert code in ENDED, (code, self.session.error)
        return code


def _after_each(sup: SupervisorProc, stack: Stack) -> None:
    """The supervisor survived, the session is gone, and nothing was committed."""
    assert sup.alive(), sup.tail()
    wait_until(lambda: sup.workers() == [], 15, message=lambda: f"listed: {sup.workers()}")
    assert sup.status()["inflight_tasks"] == 0
    assert not any(stack.committed().values()), "committed past records nobody wrote"
    assert sup.records_done() == 0, "a hostile ack completed records"


def oversized(sup: SupervisorProc) -> None:
    with Hostile(sup) as peer:
        peer.send(hello())
        peer.send(credit_on_wire(2))
        held = peer.wait_tasks(2)
        # An OK ack of a task it holds, made too large to be read at all.
        peer.send(ack(held[0].task_id, runner_pb2.ACK_STATUS_OK, "x" * OVERSIZED))
        assert peer.assert_ended() == grpc.StatusCode.RESOURCE_EXHAUSTED


def ack_before_hello(sup: SupervisorProc) -> None:
    with Hostile(sup) as peer:
        peer.send(ack("t-1.1", runner_pb2.ACK_STATUS_OK))
        peer.send(hello())
        peer.send(credit_on_wire(2))
        assert peer.assert_ended() == grpc.StatusCode.INVALID_ARGUMENT
        assert peer.session.received == [], "a peer without a Hello got messages"


def garbage_first(sup: SupervisorProc) -> None:
    with Hostile(sup) as peer:
        peer.send(b"\xff\xff\xff" + b"\x00" * 64)  # wire type 7: no protobuf message
        assert peer.assert_ended() == grpc.StatusCode.INVALID_ARGUMENT
        assert peer.session.received == []


def duplicate_ack(sup: SupervisorProc) -> None:
    with Hostile(sup) as peer:
        peer.send(hello())
        peer.send(credit_on_wire(1))
        task = peer.wait_tasks(1)[0]
        peer.wait_held(1)
        # RETRY is honest (nothing written, do it again); the same ack again is not.
        peer.send(ack(task.task_id, runner_pb2.ACK_STATUS_RETRY, "once"))
        peer.send(ack(task.task_id, runner_pb2.ACK_STATUS_RETRY, "twice"))
        assert peer.assert_ended() == grpc.StatusCode.FAILED_PRECONDITION


def absurd_credit(sup: SupervisorProc) -> None:
    with Hostile(sup) as peer:
        peer.send(hello())
        peer.send(credit_on_wire(-1))  # 2^32-1 once read as uint32
        peer.wait_tasks(MAX_INFLIGHT)
        peer.wait_held(MAX_INFLIGHT)
        peer.send(credit_on_wire(10**9))
        peer.send(credit_on_wire(-(2**63)))  # low 32 bits: 0, credit withdrawn
        peer.send(credit_on_wire(2**32 + 3))  # low 32 bits: 3
        # A message after the credits, answered by the end of the stream, orders them:
        # once it ends, every credit above was handled.
        peer.send(hello())
        assert peer.assert_ended() == grpc.StatusCode.FAILED_PRECONDITION
        tasks = peer.tasks()
        assert len(tasks) == MAX_INFLIGHT, "more tasks than the Hello's MAX_INFLIGHT"
        assert len({t.task_id for t in tasks}) == MAX_INFLIGHT


def ok_without_proof(sup: SupervisorProc) -> None:
    with Hostile(sup) as peer:
        peer.send(hello())
        peer.send(credit_on_wire(2))
        held = peer.wait_tasks(2)
        peer.wait_held(2)
        # "All written", for records nobody wrote: the contract wants a write proof.
        peer.send(ack(held[0].task_id, runner_pb2.ACK_STATUS_OK))
        assert peer.assert_ended() == grpc.StatusCode.FAILED_PRECONDITION


SESSIONS: list[Callable[[SupervisorProc], None]] = [
    oversized,
    ack_before_hello,
    garbage_first,
    duplicate_ack,
    absurd_credit,
    *([ok_without_proof] if HAS_PROOF else []),
]


@pytest.fixture
def sup(procs: Processes, stack: Stack) -> SupervisorProc:
    produce_demo(procs, stack, 2_000, partitions=2)
    # A long lease: every redelivery here comes from a hostile session's end.
    return procs.supervisor(stack.env(BATCH_MAX_RECORDS=100, LEASE_TIMEOUT_S=300))


def test_a_hostile_peer_is_cut_off_never_obeyed_and_a_worker_then_moves_everything(
    procs: Processes, stack: Stack, sup: SupervisorProc
) -> None:
    ends = stack.end_offsets()
    for session in SESSIONS:
        session(sup)
        _after_each(sup, stack)
    # gRPC itself refuses the oversized message (RESOURCE_EXHAUSTED) and cancels the call
    # before the service reads it: that session ends without a violation of its own.
    assert sup.metric("supervisor_protocol_errors_total") == len(SESSIONS) - 1
    assert "Traceback" not in sup.stderr(), sup.tail()

    procs.worker(
        stack.env(
            SUPERVISOR_GRPC_ADDR=sup.grpc_addr,
            WORKER_PROCESSOR="tests.support.processors:passthrough",
        )
    )
    stack.wait_committed_at_end(90, ends)
    assert sup.terminate(timeout=60) == 0, sup.tail()
    assert_committed_at_end(stack.committed(), ends)
    audit = audit_topics(stack.bootstrap, stack.topics.input, stack.topics.output, stack.topics.dlq)
    print(f"after {len(SESSIONS)} hostile sessions: {audit.summary()}")
    assert not audit.lost, audit.summary()
    assert not audit.bogus
    # The hostile peer wrote nothing, so each record's one copy is the worker's.
    assert audit.duplicates == 0, audit.summary()
    assert len(audit.outputs) == sum(ends.values()), audit.summary()
