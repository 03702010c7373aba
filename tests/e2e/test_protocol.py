"""A worker that breaks the Runner protocol is disconnected with a logged reason, and the
tasks it held are redelivered to a well-behaved worker: nothing lost, nothing doubled.

The rogue is a raw gRPC stream driven by the test, so it can say what no real worker
says: an ack for a task it does not hold, an OK ack whose write proof does not add up
(none, nothing written, other offsets), a second Hello, bytes that are no message.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from streamplane.platform import headers as h
from streamplane.platform import write_proof
from streamplane.runner.v1 import runner_pb2
from tests.support.audit import Source, assert_committed_at_end, audit_topics, source_of
from tests.support.deadline import wait_until
from tests.support.procs import Processes, Stack, produce_demo

pytestmark = pytest.mark.kafka

METHOD = "/streamplane.runner.v1.Runner/Connect"
CREDIT = 2
_END = object()


def _serialize(message: runner_pb2.WorkerMessage | bytes) -> bytes:
    """Protobuf messages as usual; raw bytes go on the wire as they are."""
    return message if isinstance(message, bytes) else message.SerializeToString()


def task_sources(task: runner_pb2.Task) -> list[Source]:
    """(partition, offset) of every record in a task, in either record encoding."""
    records: Any = task.records
    if hasattr(records, "offsets"):  # one packed RecordBatch per task
        return [(records.partition, offset) for offset in records.offsets]
    return [(r.partition, r.offset) for r in records]


class RawSession:
    """One Connect stream whose every message the test chooses."""

    def __init__(self, address: str, serializer: Callable[[Any], bytes]) -> None:
        self.channel = grpc.insecure_channel(address)
        self._outbox: queue.Queue[object] = queue.Queue()
        connect = self.channel.stream_stream(
            METHOD,
            request_serializer=serializer,
            response_deserializer=runner_pb2.SupervisorMessage.FromString,
        )
        self.call = connect(iter(self._outbox.get, _END))
        self.received: list[runner_pb2.SupervisorMessage] = []
        self.error: grpc.RpcError | None = None
        self.ended = threading.Event()
        self._reader = threading.Thread(target=self._read, name="raw-session", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for message in self.call:
                self.received.append(message)
        except grpc.RpcError as exc:
            self.error = exc
        finally:
            self.ended.set()

    def send(self, message: runner_pb2.WorkerMessage | bytes) -> None:
        self._outbox.put(message)

    def tasks(self) -> list[runner_pb2.Task]:
        return [m.task for m in list(self.received) if m.WhichOneof("body") == "task"]

    def close(self) -> None:
        self._outbox.put(_END)
        self.call.cancel()
        self._reader.join(5)
        self.channel.close()


def hello(worker_id: str = "rogue") -> runner_pb2.WorkerMessage:
    message = runner_pb2.WorkerMessage()
    message.hello.worker_id = worker_id
    message.hello.node_id = "test"
    message.hello.max_inflight = CREDIT
    message.hello.transport = runner_pb2.TRANSPORT_GRPC
    message.hello.engine = "polars"
    message.hello.version = "test"
    return message


def credit(available: int) -> runner_pb2.WorkerMessage:
    message = runner_pb2.WorkerMessage()
    message.credit.available = available
    return message


def ack_ok(task_id: str) -> runner_pb2.WorkerMessage:
    message = runner_pb2.WorkerMessage()
    message.ack.task_id = task_id
    message.ack.status = runner_pb2.ACK_STATUS_OK
    return message


def ack_unknown(_held: runner_pb2.Task) -> runner_pb2.WorkerMessage:
    return ack_ok("no-such-task.1")


def ack_without_proof(held: runner_pb2.Task) -> runner_pb2.WorkerMessage:
    """The rogue of issue 12.1 with the token: OK for a task it never wrote."""
    return ack_ok(held.task_id)


def ack_writing_nothing(held: runner_pb2.Task) -> runner_pb2.WorkerMessage:
    """A proof that names the task's records exactly but wrote none of them."""
    message = ack_ok(held.task_id)
    write_proof.fill(message.ack.proof, held.records.offsets, {})
    return message


def ack_for_other_offsets(held: runner_pb2.Task) -> runner_pb2.WorkerMessage:
    """A proof of as many writes as records, for offsets the task does not hold."""
    message = ack_ok(held.task_id)
    offsets = [offset + 1 for offset in held.records.offsets]
    write_proof.fill(message.ack.proof, offsets, {"out": len(offsets)})
    return message


Violation = Callable[[runner_pb2.Task], runner_pb2.WorkerMessage | bytes]
VIOLATIONS: dict[str, tuple[Violation, str]] = {
    "ack-unknown-task": (ack_unknown, "unknown task"),
    "ok-ack-without-proof": (ack_without_proof, "carries no write proof"),
    "ok-ack-writing-nothing": (ack_writing_nothing, "wrote 0 records"),
    "ok-ack-for-other-offsets": (ack_for_other_offsets, "other offsets"),
    "second-hello": (lambda _held: hello(), "second Hello"),
    "garbage-bytes": (lambda _held: b"\xff\xff\xff", "unreadable"),
}


@pytest.mark.parametrize("violation", sorted(VIOLATIONS))
def test_protocol_violation_disconnects_and_redelivers(
    procs: Processes, stack: Stack, violation: str, record_property: pytest.RecordProperty
) -> None:
    make_message, reason = VIOLATIONS[violation]
    count = 1_000
    produce_demo(procs, stack, count, partitions=2)
    ends = stack.end_offsets()
    # A long lease: redelivery here must come from the disconnect, not from a timeout.
    sup = procs.supervisor(stack.env(BATCH_MAX_RECORDS=100, LEASE_TIMEOUT_S=300))

    rogue = RawSession(sup.grpc_addr, _serialize)
    try:
        rogue.send(hello())
        rogue.send(credit(CREDIT))
        wait_until(
            lambda: len(rogue.tasks()) >= CREDIT or rogue.ended.is_set(),
            30,
            message=lambda: f"rogue got {rogue.received}",
        )
        assert not rogue.ended.is_set(), f"stream ended early: {rogue.error}"
        assert rogue.received[0].WhichOneof("body") == "welcome"
        held = [src for task in rogue.tasks() for src in task_sources(task)]
        assert len(rogue.tasks()) == CREDIT, "the supervisor sent more than the credit"
        assert sup.workers()[0]["in_flight"] == CREDIT

        rogue.send(make_message(rogue.tasks()[0]))
        assert rogue.ended.wait(15), "the supervisor kept a rogue stream open"
        assert rogue.error is not None, "the stream must end with an error status"
        code = rogue.error.code()  # type: ignore[attr-defined]
        assert code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT), (
            code,
            rogue.error,
        )
    finally:
        rogue.close()

    sup.wait_log("protocol violation")
    violations = [line for line in sup.stderr().splitlines() if "protocol violation" in line]
    assert len(violations) == 1, violations
    assert reason in violations[0], violations[0]
    assert sup.metric("supervisor_protocol_errors_total") == 1
    wait_until(lambda: not sup.workers(), 10, message=lambda: f"still listed: {sup.workers()}")
    failures = sup.status()["events"]["failures"]
    assert failures.get("worker-lost") == CREDIT, failures

    procs.worker(
        stack.env(
            SUPERVISOR_GRPC_ADDR=sup.grpc_addr,
            WORKER_PROCESSOR="tests.support.processors:passthrough",
        )
    )
    stack.wait_committed_at_end(60, ends)
    assert sup.terminate(timeout=60) == 0, sup.tail()
    assert_committed_at_end(stack.committed(), ends)

    audit = audit_topics(stack.bootstrap, stack.topics.input, stack.topics.output, stack.topics.dlq)
    record_property("duplicates", audit.duplicates)
    print(f"protocol violation {violation}: {audit.summary()}")
    assert not audit.lost, audit.summary()
    assert not audit.bogus
    # The rogue wrote nothing, so its tasks' second delivery is each record's only copy.
    assert audit.duplicates == 0, audit.summary()
    attempts = {source_of(r, stack.topics.input): int(r.headers[h.ATTEMPT]) for r in audit.outputs}
    assert all(attempts[src] >= 2 for src in held), "the rogue's records were redelivered"
    assert sum(1 for a in attempts.values() if a >= 2) == len(held)
