"""The Runner gRPC service: one bidirectional stream per worker session.

The stream carries Hello, Credit and Ack up, Welcome, Task and Drain down. A worker that
breaks the protocol (no Hello first, a second Hello, an ack for a task it does not hold,
an OK ack whose write proof does not add up, bytes that do not parse) is disconnected
with a logged reason, and what it held is requeued by `Dispatcher.disconnect`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2

from streamplane.platform import metrics as m
from streamplane.platform import rpc, write_proof
from streamplane.platform.supervisor.dispatcher import (
    Dispatcher,
    ProtocolViolation,
    Transport,
    quoted_id,
)
from streamplane.platform.supervisor.mesh_dispatch import MeshTransport
from streamplane.platform.supervisor.tasks import Task
from streamplane.runner.v1 import runner_pb2, runner_pb2_grpc

logger = logging.getLogger(__name__)

SERVICE_NAME = "streamplane.runner.v1.Runner"
MAX_DECLARED_INFLIGHT = 1024
# A worker that says nothing for this long after connecting is not a worker.
HELLO_TIMEOUT_S = 10.0
# Ids are logged, listed by /v1/workers and used as Kafka client ids: bounded and plain.
# 256 holds a fully qualified host name plus "-<pid>" (a DNS name is at most 253).
MAX_ID_CHARS = 256
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.:@+\-]+")


@dataclass(frozen=True, slots=True)
class _Close:
    code: grpc.StatusCode
    reason: str


_Outgoing = runner_pb2.SupervisorMessage | _Close | None


class StreamTransport:
    """Dispatch over the Connect stream: a task goes into its session's outbox."""

    def __init__(self) -> None:
        self.outboxes: dict[str, asyncio.Queue[_Outgoing]] = {}

    def send(self, session: str, task: Task) -> None:
        """Queue the task's message on the session's stream."""
        m.TASKS_DISPATCHED.labels(m.tenant_label(task.tenant)).inc()
        m.observe_age(m.AGE_DISPATCHED, task.first_timestamp_ms)
        self.outboxes[session].put_nowait(task.to_message())


class RunnerService(runner_pb2_grpc.RunnerServicer):
    """Serves Runner.Connect on top of a Dispatcher."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        welcome_config: Mapping[str, str],
        transport: StreamTransport | None = None,
        on_change: Callable[[], None] | None = None,
        mesh: MeshTransport | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        dispatcher.on_evict = self.evict
        self._config = dict(welcome_config)
        self.transport = transport or StreamTransport()
        # With mesh publishing configured, a worker whose Hello says TRANSPORT_MESH takes
        # its tasks through MeshData; acks and credit stay on this stream either way.
        self.mesh = mesh
        self._on_change = on_change or dispatcher.dispatch
        self.draining = False

    async def Connect(
        self,
        request_iterator: AsyncIterator[runner_pb2.WorkerMessage],
        context: grpc.aio.ServicerContext[runner_pb2.WorkerMessage, runner_pb2.SupervisorMessage],
    ) -> AsyncIterator[runner_pb2.SupervisorMessage]:
        """Run one worker session until the stream ends."""
        session = uuid.uuid4().hex[:12]
        hello = await self._receive_hello(session, request_iterator, context)
        if hello is None:
            return
        route = await self._route(session, hello, context)
        if route is None:
            return
        outbox = self._register(session, hello, *route)
        yield self._welcome_message(session)
        if self.draining:
            yield _drain_message("supervisor is draining")
        reader = asyncio.create_task(self._read(session, request_iterator, outbox))
        try:
            while True:
                item = await outbox.get()
                if item is None:
                    return
                if isinstance(item, _Close):
                    await context.abort(item.code, item.reason)
                    return
                yield item
        finally:
            reader.cancel()
            self._unregister(session, hello)

    async def _receive_hello(
        self,
        session: str,
        requests: AsyncIterator[runner_pb2.WorkerMessage],
        context: grpc.aio.ServicerContext[runner_pb2.WorkerMessage, runner_pb2.SupervisorMessage],
    ) -> runner_pb2.Hello | None:
        """The session's Hello, or None when the stream ended (or was refused) first."""
        try:
            first = await asyncio.wait_for(anext(requests), HELLO_TIMEOUT_S)
        except (StopAsyncIteration, TimeoutError):
            return None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Bytes that are no WorkerMessage: a violation like any later one, not an
            # error of ours (gRPC would log a traceback and answer UNKNOWN).
            self._violation(session, f"unreadable first message: {type(exc).__name__}")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "unreadable message")
            return None
        hello_error = check_hello(first)
        if not hello_error and self._dispatcher.transactions and not first.hello.transactional_id:
            hello_error = "Hello without transactional_id: exactly_once needs a newer worker"
        if hello_error:
            self._violation(session, hello_error)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, hello_error)
            return None
        return first.hello

    async def _route(
        self,
        session: str,
        hello: runner_pb2.Hello,
        context: grpc.aio.ServicerContext[runner_pb2.WorkerMessage, runner_pb2.SupervisorMessage],
    ) -> tuple[Transport, frozenset[str] | None] | None:
        """How tasks reach this worker (stream or MeshData) and from which domains."""
        if self.mesh is None:
            if hello.transport == runner_pb2.TRANSPORT_MESH:
                logger.warning(
                    "mesh worker on a supervisor without mesh publishing: tasks go on the stream",
                    extra={"worker": hello.worker_id, "session": session},
                )
            return self.transport, None
        if hello.transport != runner_pb2.TRANSPORT_MESH:
            return self.transport, self.mesh.stream_domains
        try:
            domains = self.mesh.open(session, hello.worker_id, hello.node_id)
        except ValueError as exc:
            logger.warning(
                "mesh worker refused",
                extra={"worker": hello.worker_id, "session": session, "reason": str(exc)},
            )
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
            return None
        return self.mesh, domains

    def _register(
        self,
        session: str,
        hello: runner_pb2.Hello,
        transport: Transport,
        domains: frozenset[str] | None,
    ) -> asyncio.Queue[_Outgoing]:
        outbox: asyncio.Queue[_Outgoing] = asyncio.Queue()
        self.transport.outboxes[session] = outbox
        self._dispatcher.connect(
            session,
            hello.worker_id,
            hello.max_inflight,
            transport,
            domains=domains,
            transactional_id=hello.transactional_id,
        )
        m.WORKERS.set(len(self._dispatcher.workers))
        logger.info(
            "worker connected",
            extra={
                "worker": hello.worker_id,
                "session": session,
                "max_inflight": hello.max_inflight,
                "transport": "mesh" if transport is self.mesh else "stream",
            },
        )
        return outbox

    def _welcome_message(self, session: str) -> runner_pb2.SupervisorMessage:
        welcome = runner_pb2.SupervisorMessage()
        welcome.welcome.session_id = session
        welcome.welcome.config.update(self._config)
        return welcome

    def _unregister(self, session: str, hello: runner_pb2.Hello) -> None:
        self.transport.outboxes.pop(session, None)
        if self.mesh is not None:
            self.mesh.close(session)
        self._dispatcher.disconnect(session)
        m.WORKERS.set(len(self._dispatcher.workers))
        logger.info("worker disconnected", extra={"worker": hello.worker_id, "session": session})
        self._on_change()

    async def _read(
        self,
        session: str,
        requests: AsyncIterator[runner_pb2.WorkerMessage],
        outbox: asyncio.Queue[_Outgoing],
    ) -> None:
        try:
            async for request in requests:
                error = self._handle(session, request)
                if error:
                    self._violation(session, error)
                    outbox.put_nowait(_Close(grpc.StatusCode.FAILED_PRECONDITION, error))
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._violation(session, f"unreadable stream: {exc}")
            outbox.put_nowait(_Close(grpc.StatusCode.INVALID_ARGUMENT, "unreadable message"))
            return
        outbox.put_nowait(None)

    def _handle(self, session: str, request: runner_pb2.WorkerMessage) -> str | None:
        kind = request.WhichOneof("body")
        if kind == "ack":
            ack = request.ack
            ok = ack.status == runner_pb2.ACK_STATUS_OK
            retry = ack.status == runner_pb2.ACK_STATUS_RETRY
            if not (ok or retry or ack.status == runner_pb2.ACK_STATUS_REJECT):
                return f"ack {quoted_id(ack.task_id)} has no status"
            if ok:
                task = self._dispatcher.held(session, ack.task_id)
                refused = self._refused_proof(task, ack)
                if refused:
                    return refused
                if task is not None:
                    m.observe_age(m.AGE_ACKED, task.first_timestamp_ms)
            try:
                self._dispatcher.ack(session, ack.task_id, ok, retry, ack.error)
            except ProtocolViolation as exc:
                return str(exc)
            m.TASKS_ACKED.labels(runner_pb2.AckStatus.Name(ack.status)).inc()
        elif kind == "credit":
            self._dispatcher.credit(session, request.credit.available)
        elif kind == "hello":
            return "second Hello on one stream"
        else:
            return "empty message"
        self._on_change()
        return None

    def _refused_proof(self, task: Task | None, ack: runner_pb2.Ack) -> str | None:
        """Why an OK ack's write proof fails its held task, or None when it holds.

        Checked before the dispatcher settles the task, so a refused ack leaves the task
        in flight and the disconnect that follows requeues it. Late acks of attempts
        already given up are not checked: the dispatcher ignores them.
        """
        if task is None:
            return None
        try:
            write_proof.check(ack, task.offsets)
        except write_proof.ProofMismatch as exc:
            m.ACK_PROOFS_REFUSED.inc()
            return str(exc)
        return None

    def _violation(self, session: str, reason: str) -> None:
        m.PROTOCOL_ERRORS.inc()
        logger.warning("worker protocol violation", extra={"session": session, "reason": reason})

    def evict(self, session: str) -> None:
        """End a session the dispatcher gave up (its stream closes; it is then fenced)."""
        outbox = self.transport.outboxes.get(session)
        if outbox is not None:
            outbox.put_nowait(
                _Close(grpc.StatusCode.ABORTED, "task lease expired: session given up")
            )

    def drain_all(self, reason: str) -> None:
        """Tell every connected worker to finish in-flight work and take no more."""
        self.draining = True
        for outbox in self.transport.outboxes.values():
            outbox.put_nowait(_drain_message(reason))


def _drain_message(reason: str) -> runner_pb2.SupervisorMessage:
    message = runner_pb2.SupervisorMessage()
    message.drain.reason = reason
    return message


def check_hello(message: runner_pb2.WorkerMessage) -> str | None:
    """Why a session's first message is refused, or None for a well-formed Hello.

    The reason never quotes the offending text: it is logged, and a hostile id must not
    reach the log (nor a 10 MB one fill it).
    """
    if message.WhichOneof("body") != "hello":
        return "the first message must be Hello"
    hello = message.hello
    if not hello.worker_id:
        return "Hello without worker_id"
    for name in ("worker_id", "node_id", "engine", "version", "transactional_id"):
        problem = _id_problem(getattr(hello, name))
        if problem is not None:
            return f"Hello {name} {problem}"
    if not 1 <= hello.max_inflight <= MAX_DECLARED_INFLIGHT:
        return f"Hello max_inflight {hello.max_inflight} outside 1..{MAX_DECLARED_INFLIGHT}"
    return None


def _id_problem(value: str) -> str | None:
    if len(value) > MAX_ID_CHARS:
        return f"longer than {MAX_ID_CHARS} characters ({len(value)})"
    if value and not _PLAIN_ID.fullmatch(value):
        return "holds characters outside A-Z a-z 0-9 _ . : @ + -"
    return None


def create_server(
    address: str, service: RunnerService, security: rpc.Security | None = None
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """A gRPC server with Runner and the standard health service; returns the bound port."""
    return rpc.create_server(
        address,
        lambda server: runner_pb2_grpc.add_RunnerServicer_to_server(service, server),
        security,
    )


async def set_serving(servicer: health.aio.HealthServicer, serving: bool) -> None:
    """Flip the health status of the Runner service and the server as a whole."""
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    await servicer.set(SERVICE_NAME, status)
    await servicer.set("", status)
