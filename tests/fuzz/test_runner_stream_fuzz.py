"""Fuzzing the supervisor's side of Runner.Connect with hostile WorkerMessage sequences.

A real gRPC server on 127.0.0.1 serves the real `RunnerService` over a real `Dispatcher`
holding a few queued tasks; a raw client sends what hypothesis draws: Acks before Hello,
second Hellos, acks for unknown, duplicate or other attempts' ids, acks without a status,
credit of 0, 10^9, 2^32-1 or a negative number on the wire, empty messages, bytes that
are no message, and messages padded to megabytes. After every message the test waits
until the server has handled it, then checks it against the contract of runner.proto:

- a message the contract forbids ends the stream with an error status, at once;
- every other message keeps it open, and the worker never holds more tasks than the
  credit and MAX_INFLIGHT it declared;
- nothing is obeyed that was not said by the task's holder: the committable offset is
  exactly the first record not acked OK (with a write proof, where the contract has one);
- no record is lost: each is done, queued again, or with the dead-letter writer;
- the server stays up: a well-behaved worker is welcomed afterwards.

tests/e2e/test_protocol.py covers one violation of each kind against a real supervisor
and Kafka; this explores their combinations and orders in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from array import array
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from streamplane.platform.supervisor.dispatcher import Dispatcher
from streamplane.platform.supervisor.scheduler import Scheduler
from streamplane.platform.supervisor.service import RunnerService, StreamTransport, create_server
from streamplane.platform.supervisor.tasks import Task, TopicPartition
from streamplane.runner.v1 import runner_pb2
from tests.unit.platform.supervisor.factories import FakeDeadLetters, make_task

SLOW = settings.get_profile("fuzz-slow")

METHOD = "/streamplane.runner.v1.Runner/Connect"
TP: TopicPartition = ("in", 0)
TASKS = 6
RECORDS_PER_TASK = 3
OUTPUT_TOPIC = "out"
# How long the test waits for the server to do what it must; never a timing assertion:
# reaching it fails the test with what was awaited.
PATIENCE_S = 20.0
MIB = 1024 * 1024
UINT32_MAX = 2**32 - 1
# The write proof an OK ack carries, where this checkout's contract has one (runner.proto,
# WriteProof); built here from the proto's words, not from the supervisor's code.
HAS_PROOF = "proof" in runner_pb2.Ack.DESCRIPTOR.fields_by_name
FAILED = grpc.StatusCode.FAILED_PRECONDITION
INVALID = grpc.StatusCode.INVALID_ARGUMENT


# -- the messages ---------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    max_inflight: int
    worker_id: str = "fuzz-worker"

    @property
    def valid(self) -> bool:
        plain = all(c.isascii() and (c.isalnum() or c in "_.:@+-") for c in self.worker_id)
        return 1 <= self.max_inflight <= 1024 and 0 < len(self.worker_id) <= 256 and plain

    def message(self) -> runner_pb2.WorkerMessage:
        message = runner_pb2.WorkerMessage()
        message.hello.worker_id = self.worker_id
        message.hello.max_inflight = self.max_inflight
        message.hello.transport = runner_pb2.TRANSPORT_GRPC
        message.hello.engine = "polars"
        message.hello.version = "fuzz"
        return message


@dataclass(frozen=True)
class Credit:
    # What the peer puts on the wire: an int64 varint, so -1 is what a signed peer sends.
    wire: int

    @property
    def available(self) -> int:
        """The uint32 a conforming parser reads (proto3: the low 32 bits of the varint)."""
        return self.wire & UINT32_MAX


@dataclass(frozen=True)
class Ack:
    # held: a task the peer holds now; acked: one it already answered (a duplicate);
    # unknown: an id never sent; guess: the next attempt's id of an answered task.
    target: str
    status: int
    pick: int = 0
    forged: bool = False
    error_bytes: int = 0
    good: bool = False  # drawn as a worker's ack: skipped while the worker holds nothing


@dataclass(frozen=True)
class Empty:
    pass


@dataclass(frozen=True)
class Garbage:
    tail: bytes


Op = Hello | Credit | Ack | Empty | Garbage

STATUSES = [
    runner_pb2.ACK_STATUS_OK,
    runner_pb2.ACK_STATUS_RETRY,
    runner_pb2.ACK_STATUS_REJECT,
    runner_pb2.ACK_STATUS_UNSPECIFIED,
    7,  # no such AckStatus: proto3 keeps it as an unknown enum value
]

hellos = st.builds(
    Hello,
    max_inflight=st.sampled_from([1, 2, 4, 1024, 0, 1025, 10**9, UINT32_MAX]),
    worker_id=st.sampled_from(["fuzz-worker", "w1", "", "bad id\n", "x" * 257]),
)
valid_hellos = st.builds(Hello, max_inflight=st.sampled_from([1, 2, 4, 1024]))
credits = st.builds(
    Credit,
    wire=st.sampled_from([0, 1, 2, 3, 10**9, UINT32_MAX, -1, -(2**31), -(2**63), 2**32 + 2])
    | st.integers(0, 8),
)
# Acks a worker may send: for a task it holds, with a status (and a true proof).
good_acks = st.builds(
    Ack,
    target=st.just("held"),
    status=st.sampled_from(STATUSES[:3]),
    pick=st.integers(0, 7),
    error_bytes=st.sampled_from([0, 0, 0, 100, 2 * MIB]),
    good=st.just(True),
)
# And everything else: duplicates, unknown or guessed ids, no status, a forged proof.
acks = st.builds(
    Ack,
    target=st.sampled_from(["held", "acked", "unknown", "guess"]),
    status=st.sampled_from(STATUSES),
    pick=st.integers(0, 7),
    forged=st.booleans() if HAS_PROOF else st.just(False),
    error_bytes=st.sampled_from([0, 100, 2 * MIB]),
)
others: st.SearchStrategy[Op] = st.one_of(
    hellos,
    st.just(Empty()),
    st.builds(Garbage, tail=st.binary(max_size=32)),
)
# Mostly what keeps a session going (credit, acks of held tasks), so that sequences get
# deep before the message that ends them (if any); most start by granting credit.
# (one_of weighs its flattened branches alike: the weights go through sampled_from.)
_KINDS: dict[str, st.SearchStrategy[Op]] = {
    "credit": credits,
    "good": good_acks,
    "ack": acks,
    "other": others,
}
_op = st.sampled_from(["credit"] * 3 + ["good"] * 6 + ["ack", "other"]).flatmap(_KINDS.__getitem__)
_ops = st.lists(_op, min_size=2, max_size=16)
ops_after_hello = st.one_of(
    st.builds(lambda c, ops: [Credit(c), *ops], st.integers(1, 8), _ops), _ops
)
invalid_hellos = st.one_of(
    st.builds(Hello, max_inflight=st.sampled_from([0, 1025, 10**9, UINT32_MAX])),
    st.builds(
        Hello, max_inflight=st.just(4), worker_id=st.sampled_from(["", "bad id\n", "x" * 257])
    ),
)
padding = st.sampled_from([0, 0, 0, 0, 0, 64 * 1024, 3 * MIB])


def _varint(value: int) -> bytes:
    value &= 2**64 - 1  # a negative number goes on the wire as its 64-bit two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _credit_bytes(wire: int) -> bytes:
    inner = b"\x08" + _varint(wire)  # Credit.available, field 1, varint
    return b"\x12" + _varint(len(inner)) + inner  # WorkerMessage.credit, field 2


def _pad(data: bytes, size: int) -> bytes:
    """`data` with an unknown field of `size` bytes: a parser must skip it whole."""
    if not size:
        return data
    return data + b"\xfa\x07" + _varint(size) + b"p" * size  # field 127, length-delimited


def _crc(offsets: list[int]) -> int:
    return zlib.crc32(array("q", offsets).tobytes())  # little-endian int64s (runner.proto)


# -- the harness ----------------------------------------------------------------------


class CountingTransport(StreamTransport):
    """The stream transport, counting the tasks sent to each session."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: dict[str, int] = {}

    def send(self, session: str, task: Task) -> None:
        self.sent[session] = self.sent.get(session, 0) + 1
        super().send(session, task)


class ObservedService(RunnerService):
    """The Runner service, counting the messages its stream handler has taken.

    The service reads a message and handles it with no await in between, so once the
    test (on the same event loop) sees the count reach n, message n has been handled.
    """

    def __init__(self, dispatcher: Dispatcher, transport: CountingTransport) -> None:
        super().__init__(dispatcher, {"output_topic": OUTPUT_TOPIC}, transport=transport)
        self.taken = 0

    async def Connect(
        self,
        request_iterator: AsyncIterator[runner_pb2.WorkerMessage],
        context: grpc.aio.ServicerContext[runner_pb2.WorkerMessage, runner_pb2.SupervisorMessage],
    ) -> AsyncIterator[runner_pb2.SupervisorMessage]:
        replies = super().Connect(self._counted(request_iterator), context)
        async with contextlib.aclosing(replies):  # type: ignore[type-var]
            async for reply in replies:
                yield reply

    async def _counted(
        self, requests: AsyncIterator[runner_pb2.WorkerMessage]
    ) -> AsyncIterator[runner_pb2.WorkerMessage]:
        async for request in requests:
            self.taken += 1
            yield request


class Peer:
    """One raw Connect stream: sends bytes, collects what comes back."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        connect = channel.stream_stream(
            METHOD,
            request_serializer=lambda data: data,
            response_deserializer=runner_pb2.SupervisorMessage.FromString,
        )
        self.call: Any = connect()
        self.received: list[runner_pb2.SupervisorMessage] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError):  # its status is read from the call
            while True:
                message = await self.call.read()
                if message is grpc.aio.EOF:
                    return
                self.received.append(message)

    @property
    def ended(self) -> bool:
        return self.reader.done()

    async def code(self) -> grpc.StatusCode:
        await _until(lambda: self.ended, "the stream to end")
        code: grpc.StatusCode = await self.call.code()
        return code

    def tasks(self) -> list[runner_pb2.Task]:
        return [m.task for m in self.received if m.WhichOneof("body") == "task"]

    async def send(self, data: bytes) -> bool:
        """Write `data`; False when the stream has already ended."""
        if self.ended:
            return False
        try:
            await self.call.write(data)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            return False
        return True


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {PATIENCE_S:g} s for {what}")
        await asyncio.sleep(0.001)


@dataclass
class Model:
    """What runner.proto lets the peer expect, and what it has done so far."""

    max_inflight: int = 0
    session: str = ""
    held: dict[str, list[int]] = field(default_factory=dict)  # wire id -> offsets
    answered: list[str] = field(default_factory=list)
    done: set[int] = field(default_factory=set)
    allowance: int = 0
    accepting: bool = True
    seen_tasks: int = 0

    def room(self) -> int:
        return self.max_inflight - len(self.held)


class Scenario:
    """One example: a dispatcher with queued tasks behind a real server, and a peer."""

    def __init__(self) -> None:
        self.dead_letters = FakeDeadLetters()
        self.dispatcher = Dispatcher(
            scheduler=Scheduler(quantum=8),
            dead_letters=self.dead_letters,
            max_attempts=3,
            lease_timeout_s=3600.0,
            retry_backoff_s=0.0,
            clock=time.monotonic,
            id_prefix="fuzz",
        )
        self.dispatcher.assign(TP, None)
        tracker = self.dispatcher.ledger.tracker(TP)
        assert tracker is not None
        self.offsets = list(range(TASKS * RECORDS_PER_TASK))
        for start in range(0, len(self.offsets), RECORDS_PER_TASK):
            chunk = self.offsets[start : start + RECORDS_PER_TASK]
            tracker.register(chunk)
            self.dispatcher.submit(make_task(TP, chunk, tracker))
        self.transport = CountingTransport()
        self.service = ObservedService(self.dispatcher, self.transport)

    def ack_bytes(self, model: Model, ack: Ack) -> tuple[bytes, str | None]:
        """The Ack on the wire, and the held wire id it answers (None: not a held one)."""
        message = runner_pb2.WorkerMessage()
        wire = message.ack
        held = list(model.held)
        answers: str | None = None
        offsets: list[int] = []
        if ack.target == "held" and held:
            answers = held[ack.pick % len(held)]
            offsets = model.held[answers]
            wire.task_id = answers
        elif ack.target == "acked" and model.answered:
            wire.task_id = model.answered[ack.pick % len(model.answered)]
        elif ack.target == "guess" and model.answered:
            # The next attempt's id of a task answered before: held only if redelivered here.
            stem, _, attempt = model.answered[ack.pick % len(model.answered)].rpartition(".")
            wire.task_id = f"{stem}.{int(attempt) + 1}"
            if wire.task_id in model.held:
                answers, offsets = wire.task_id, model.held[wire.task_id]
        else:
            wire.task_id = f"no-such-task-{ack.pick}.1"
        wire.status = ack.status  # type: ignore[assignment]
        if ack.error_bytes:
            wire.error = "e" * ack.error_bytes
        if HAS_PROOF and ack.status == runner_pb2.ACK_STATUS_OK:
            proof = wire.proof
            proof.records = len(offsets) + (1 if ack.forged else 0)
            proof.offsets_crc32 = _crc(offsets)
            proof.written[OUTPUT_TOPIC] = len(offsets) + (1 if ack.forged else 0)
        return message.SerializeToString(), answers


async def run_session(first: Op, rest: list[Op], pad: list[int]) -> None:
    scenario = Scenario()
    server, port, _health = create_server("127.0.0.1:0", scenario.service)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await _drive(scenario, channel, first, rest, pad)
            await _check_after(scenario, channel)
    finally:
        await server.stop(0)


async def _drive(
    scenario: Scenario, channel: grpc.aio.Channel, first: Op, rest: list[Op], pad: list[int]
) -> None:
    peer = Peer(channel)
    model = Model()
    service = scenario.service

    # The first message: only a well-formed Hello opens a session.
    if isinstance(first, Hello) and first.valid:
        assert await peer.send(_pad(first.message().SerializeToString(), pad[0]))
        await _until(lambda: bool(peer.received) or peer.ended, "the Welcome")
        assert not peer.ended, f"a valid Hello was refused: {await peer.code()}"
        welcome = peer.received[0]
        assert welcome.WhichOneof("body") == "welcome"
        model.session = welcome.welcome.session_id
        model.max_inflight = first.max_inflight
    else:
        data = (
            _pad(first.message().SerializeToString(), pad[0])
            if isinstance(first, Hello)
            else _first_bytes(scenario, model, first)
        )
        await peer.send(data)
        code = await peer.code()
        assert code == INVALID, f"{first} as the first message: {code}"
        assert peer.received == [], "a refused peer got messages"
        assert scenario.transport.sent == {}, "a refused peer was sent tasks"
        return

    for op, size in zip(rest, pad[1:], strict=False):
        await _step(scenario, peer, model, op, size)
        if peer.ended:
            break
    else:
        event("ended by the peer")
        await peer.call.done_writing()
        assert await peer.code() == grpc.StatusCode.OK
    event(f"acks taken: {min(len(model.answered), 3)}+")
    event(f"records done: {len(model.done)}")
    await _until(lambda: not scenario.dispatcher.workers, "the session to be unregistered")
    assert service.transport.outboxes == {}


def _first_bytes(scenario: Scenario, model: Model, op: Op) -> bytes:
    if isinstance(op, Credit):
        return _credit_bytes(op.wire)
    if isinstance(op, Ack):
        return scenario.ack_bytes(model, op)[0]
    if isinstance(op, Garbage):
        return b"\xff\xff\xff" + op.tail
    return runner_pb2.WorkerMessage().SerializeToString()


async def _step(scenario: Scenario, peer: Peer, model: Model, op: Op, size: int) -> None:
    """Send one message; check the server's answer against the model; update it."""
    if isinstance(op, Ack) and op.good and not model.held:
        return  # an ack a worker would send, but it holds nothing to answer yet
    expect: grpc.StatusCode | None = None
    answers: str | None = None
    if isinstance(op, Hello):
        data, expect = op.message().SerializeToString(), FAILED
    elif isinstance(op, Empty):
        data, expect = runner_pb2.WorkerMessage().SerializeToString(), FAILED
    elif isinstance(op, Garbage):
        data, expect = b"\xff\xff\xff" + op.tail, INVALID
    elif isinstance(op, Credit):
        data = _credit_bytes(op.wire)
    else:
        data, answers = scenario.ack_bytes(model, op)
        forged = op.forged and op.status == runner_pb2.ACK_STATUS_OK
        if op.status not in STATUSES[:3] or answers is None or forged:
            expect = FAILED
    data = _pad(data, size)
    taken_before = scenario.service.taken
    assert await peer.send(data), "the stream ended before this message"

    if expect is not None:
        event(f"ended by {type(op).__name__}")
        code = await peer.code()
        assert code == expect, f"{op}: the stream ended with {code}, expected {expect}"
        return
    await _until(lambda: scenario.service.taken > taken_before or peer.ended, f"{op} to be handled")
    sent = scenario.transport.sent.get(model.session, 0)
    await _until(lambda: len(peer.tasks()) >= sent or peer.ended, "the tasks sent")
    assert not peer.ended, f"{op} ended the stream: {await peer.code()}"

    # The model's credit: at most min(declared, MAX_INFLIGHT - held) tasks after a Credit,
    # an accepted ack returns a slot while credit was positive, Credit(0) withdraws it.
    if isinstance(op, Credit):
        model.accepting = op.available > 0
        model.allowance = max(0, min(op.available, model.room()))
    else:
        assert isinstance(op, Ack)
        assert answers is not None
        offsets = model.held.pop(answers)
        model.answered.append(answers)
        if op.status == runner_pb2.ACK_STATUS_OK:
            model.done.update(offsets)
        if model.accepting:
            model.allowance = min(model.allowance + 1, model.room())
    new = peer.tasks()[model.seen_tasks :]
    model.seen_tasks += len(new)
    assert len(new) <= model.allowance, (
        f"{op}: {len(new)} tasks sent on an allowance of {model.allowance}"
    )
    model.allowance -= len(new)
    for task in new:
        assert task.task_id not in model.held, f"task {task.task_id} sent twice"
        model.held[task.task_id] = list(task.records.offsets)
    assert len(model.held) <= model.max_inflight
    _check_ledger(scenario, model.done)


def _check_ledger(scenario: Scenario, done: set[int]) -> None:
    """Committable is the first record not acked OK by its holder: nothing else moves it."""
    first_open = next((o for o in scenario.offsets if o not in done), scenario.offsets[-1] + 1)
    committable = scenario.dispatcher.committable().get(TP, scenario.offsets[0])
    assert committable == first_open, f"committable {committable}, first not done {first_open}"


async def _check_after(scenario: Scenario, channel: grpc.aio.Channel) -> None:
    d = scenario.dispatcher
    # No record lost: each is done, queued again, or with the dead-letter writer.
    assert d.inflight_tasks() == 0
    queued = [o for task in d.scheduler.queued() for o in task.offsets]
    lettered = [o for task in scenario.dead_letters.pending for o in task.offsets]
    committable = d.committable().get(TP, 0)
    left = sorted(queued + lettered)
    assert len(left) == len(set(left)), "a record is queued twice"
    assert committable <= (left[0] if left else committable)
    # The server still serves: a well-behaved worker is welcomed.
    peer = Peer(channel)
    await peer.send(Hello(1, "after").message().SerializeToString())
    await _until(lambda: bool(peer.received) or peer.ended, "a Welcome after the fuzzing")
    assert peer.received, f"no Welcome: {await peer.code()}"
    assert peer.received[0].WhichOneof("body") == "welcome"
    await peer.call.done_writing()
    assert await peer.code() == grpc.StatusCode.OK


@pytest.fixture(autouse=True)
def _no_errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The server logs violations as warnings; an error or a traceback is a crash."""
    caplog.set_level(logging.WARNING)
    yield
    crashes = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not crashes, [r.getMessage()[:500] for r in crashes]


@SLOW
@given(
    hello=valid_hellos,
    rest=ops_after_hello,
    pad=st.lists(padding, min_size=18, max_size=18),
)
def test_hostile_message_sequences_are_refused_never_obeyed(
    hello: Hello, rest: list[Op], pad: list[int]
) -> None:
    asyncio.run(run_session(hello, rest, pad))


@SLOW
@given(
    first=st.one_of(
        invalid_hellos,
        credits,
        acks,
        st.just(Empty()),
        st.builds(Garbage, tail=st.binary(max_size=32)),
    ),
    pad=padding,
)
def test_a_session_opens_only_with_a_well_formed_hello(first: Op, pad: int) -> None:
    asyncio.run(run_session(first, [], [pad]))


def test_bytes_that_do_not_parse_as_the_first_message_are_a_logged_violation() -> None:
    asyncio.run(run_session(Garbage(b""), [], [0]))


@pytest.mark.parametrize("status", [runner_pb2.ACK_STATUS_OK, runner_pb2.ACK_STATUS_UNSPECIFIED])
def test_a_huge_task_id_is_refused_without_echoing_it(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> grpc.StatusCode:
        scenario = Scenario()
        server, port, _health = create_server("127.0.0.1:0", scenario.service)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                peer = Peer(channel)
                await peer.send(Hello(4).message().SerializeToString())
                message = runner_pb2.WorkerMessage()
                message.ack.task_id = "x" * MIB
                message.ack.status = status  # type: ignore[assignment]
                await peer.send(message.SerializeToString())
                return await peer.code()
        finally:
            await server.stop(0)

    caplog.set_level(logging.WARNING)
    assert asyncio.run(main()) == FAILED
    violations = [r for r in caplog.records if "protocol violation" in r.getMessage()]
    assert len(violations) == 1
    reason = str(getattr(violations[0], "reason", ""))
    assert reason, "the violation is logged with its reason"
    # Like check_hello's refusals: a reason is logged, so it never carries the peer's text
    # whole (a 64 MiB id would be a 64 MiB log line, on every reconnect).
    assert len(reason) < 1024, f"a {len(reason)}-character reason"
