"""The worker's side of Runner.Connect: session, credit, tasks, acks, reconnects, drain.

Tasks are processed one at a time on a dedicated thread (the feature engine has its own
threads); acks go back the moment a task's writes are durable, so up to MAX_INFLIGHT
tasks overlap between processing and delivery.

With MESH_ENDPOINT set the worker takes its tasks from a MeshData subscription at that
node (domain MESH_DOMAIN) instead; its Hello says TRANSPORT_MESH and names the node,
and credit and acks still travel on the Connect stream. When an open subscription
breaks, what the node still queued for it may be lost, so the worker finishes what it
received and starts a new session: the supervisor requeues the rest at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Mapping

import grpc

from streamplane import __version__
from streamplane.config import Settings
from streamplane.exceptions import ConfigError
from streamplane.mesh.v1 import mesh_pb2
from streamplane.platform import metrics as m
from streamplane.platform import rpc, runtime, write_proof
from streamplane.platform.kafka.config import producer_config
from streamplane.platform.kafka.exceptions import KafkaPlatformError
from streamplane.platform.kafka.transactions import TransactionalProducer, transactional_config
from streamplane.platform.mesh.client import Subscriber
from streamplane.platform.mesh.exceptions import SubscriptionRefused
from streamplane.platform.mesh.inbox import TaskInbox
from streamplane.platform.worker.metrics_server import serve_worker_metrics
from streamplane.platform.worker.pipeline import Pipeline
from streamplane.platform.worker.processor import (
    Processor,
    ProcessorContext,
    WorkItem,
    load_processor,
)
from streamplane.platform.worker.transactions import TransactionalPipeline, TransactionalTask
from streamplane.runner.v1 import runner_pb2, runner_pb2_grpc

logger = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.1
# The worker-id part of a transactional id: the whole id stays within the supervisor's
# 256-character bound on ids.
_MAX_TXN_ID_PREFIX = 200

_Outgoing = runner_pb2.WorkerMessage | None


class Worker:
    """One worker process: build with settings, then `await run()`."""

    def __init__(self, settings: Settings, processor: Processor | None = None) -> None:
        self.settings = settings
        self.worker_id = settings.worker.worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self._processor = processor
        self._security = rpc.Security.of(settings.rpc)
        self._stop = asyncio.Event()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "sp-process")
        self._inflight: dict[str, float] = {}
        self._session = 0
        self._outbox: asyncio.Queue[_Outgoing] | None = None
        self._last_activity = time.monotonic()
        self._pipeline: Pipeline | None = None
        self.exit_reason = ""
        self._mesh: Subscriber | None = None
        self._inbox = TaskInbox(self._take_mesh_task)
        self._rotation: asyncio.Task[None] | None = None
        # exactly_once: this session's transactional pipeline, and how many tasks wait
        # for the processing thread (a transaction commits when none does).
        self._transactional_id = ""
        self._txn: TransactionalPipeline | None = None
        self._waiting = 0
        self._waiting_lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------
    async def run(self) -> int:
        """Connect (and reconnect) until stopped; returns the exit code."""
        s = self.settings
        processor = serve_worker_metrics(
            s, self._processor or load_processor(s.worker.worker_processor, s)
        )
        self._pipeline = Pipeline(processor, producer_config(s, self.worker_id))
        self._pipeline.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, "signal")
        watchdog = asyncio.create_task(self._watch_idle())
        reconnect = rpc.Reconnect(FIRST_BACKOFF_S, s.worker.reconnect_max_backoff_s)
        try:
            if s.mesh.mesh_endpoint:
                await self._subscribe(s.mesh.mesh_endpoint)
            while not self._stop.is_set():
                welcomed = await self._connect_once()
                if self._stop.is_set():
                    break
                if welcomed:
                    reconnect.reset()
                delay = reconnect.next_delay()
                logger.info("reconnecting", extra={"in_s": round(delay, 3)})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
        finally:
            watchdog.cancel()
            if self._mesh is not None:
                await self._mesh.close()
            left = await loop.run_in_executor(None, self._pipeline.stop, s.process.drain_timeout_s)
            self._executor.shutdown(wait=False)
        logger.info("worker stopped", extra={"reason": self.exit_reason, "undelivered": left})
        return 0 if left == 0 else 1

    def request_stop(self, reason: str) -> None:
        """Finish in-flight tasks, then exit."""
        if self._stop.is_set():
            return
        self.exit_reason = reason
        logger.info("worker stopping", extra={"reason": reason})
        self._stop.set()

    async def _watch_idle(self) -> None:
        idle = self.settings.worker.worker_idle_exit_s
        while idle is not None:
            await asyncio.sleep(min(0.5, idle))
            if not self._inflight and time.monotonic() - self._last_activity >= idle:
                self.request_stop("idle")
                return

    # -- one session ------------------------------------------------------------------
    async def _connect_once(self) -> bool:
        """Run one stream until it ends; returns whether the supervisor welcomed us."""
        self._session += 1
        session = self._session
        outbox: asyncio.Queue[_Outgoing] = asyncio.Queue()
        self._outbox = outbox
        outbox.put_nowait(self._hello())
        welcomed = False
        address = self.settings.worker.supervisor_grpc_addr
        security = self._security
        async with rpc.channel(address, rpc.channel_options(), security) as ch:
            call = runner_pb2_grpc.RunnerStub(ch).Connect(
                _drain_outbox(outbox), metadata=security.call_metadata()
            )
            stopper = asyncio.create_task(self._close_when_stopped(outbox))
            try:
                async for message in call:
                    kind = message.WhichOneof("body")
                    if kind == "task":
                        self._start_task(session, message.task)
                    elif kind == "welcome":
                        welcomed = True
                        await self._welcome(session, message.welcome, outbox)
                    elif kind == "drain":
                        logger.info(
                            "supervisor asked to drain", extra={"reason": message.drain.reason}
                        )
                        outbox.put_nowait(_credit(0))
            except grpc.aio.AioRpcError as exc:
                logger.warning(
                    "stream ended",
                    extra={"code": exc.code().name, "details": exc.details() or ""},
                )
                if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                    # Retried (the token may be rotating), but said plainly each time.
                    logger.error(
                        "the supervisor refused this worker's credentials: "
                        "GRPC_AUTH_TOKEN must be the supervisor's"
                    )
            finally:
                stopper.cancel()
                self._inbox.close_session()
                self._inflight.clear()  # the supervisor requeues what this session held
                self._end_transactions()
        return welcomed

    def _hello(self) -> runner_pb2.WorkerMessage:
        s = self.settings
        msg = runner_pb2.WorkerMessage()
        hello = msg.hello
        hello.worker_id = self.worker_id
        hello.max_inflight = s.worker.max_inflight
        if self._mesh is not None:
            # The supervisor addresses tasks to this subscriber at this node.
            hello.node_id = self._mesh.node_id
            hello.transport = runner_pb2.TRANSPORT_MESH
        else:
            hello.node_id = s.mesh.mesh_node_id or socket.gethostname()
            hello.transport = runner_pb2.TRANSPORT_GRPC
        hello.engine = s.worker.worker_engine
        hello.version = __version__
        # A new id per session: the supervisor fences the old one when it gives a
        # session up, and a fenced id can never write again.
        prefix = self.worker_id[:_MAX_TXN_ID_PREFIX]
        self._transactional_id = f"sp-{prefix}-{uuid.uuid4().hex[:12]}"
        hello.transactional_id = self._transactional_id
        return msg

    async def _welcome(
        self, session: int, welcome: runner_pb2.Welcome, outbox: asyncio.Queue[_Outgoing]
    ) -> None:
        s = self.settings
        config = dict(welcome.config)
        context = ProcessorContext(
            output_topic=config.get("output_topic", s.kafka.output_topic),
            dlq_topic=config.get("dlq_topic", s.kafka.dlq_topic),
            settings=s,
        )
        assert self._pipeline is not None
        self._pipeline.processor.open(context)
        if config.get("processing_guarantee") == "exactly_once":
            timeout_ms = int(config.get("transaction_timeout_ms", "30000"))
            if not await self._open_transactions(session, timeout_ms, outbox):
                return
        self._inbox.open_session(welcome.session_id)
        logger.info(
            "welcomed",
            extra={
                "session": welcome.session_id,
                "output": context.output_topic,
                "guarantee": config.get("processing_guarantee", "at_least_once"),
            },
        )
        if not self._stop.is_set():
            outbox.put_nowait(_credit(s.worker.max_inflight))

    async def _open_transactions(
        self, session: int, timeout_ms: int, outbox: asyncio.Queue[_Outgoing]
    ) -> bool:
        """Create this session's transactional producer before taking any task.

        The id is registered (init_transactions) before credit is given, so a fence the
        supervisor sends later always finds it. On failure the session ends (and the
        worker reconnects with a new id).
        """
        loop = asyncio.get_running_loop()
        conf = transactional_config(
            producer_config(self.settings, self.worker_id), self._transactional_id, timeout_ms
        )
        assert self._pipeline is not None
        processor = self._pipeline.processor
        try:
            producer = await loop.run_in_executor(self._executor, TransactionalProducer, conf)
        except KafkaPlatformError as exc:
            logger.warning("transactional producer not ready", extra={"error": str(exc)})
            outbox.put_nowait(None)
            return False

        def fenced() -> None:
            loop.call_soon_threadsafe(self._session_fenced, session)

        self._txn = TransactionalPipeline(processor, producer, self._more_waiting, fenced)
        return True

    def _more_waiting(self) -> bool:
        with self._waiting_lock:
            return self._waiting > 0

    def _session_fenced(self, session: int) -> None:
        if session == self._session and self._outbox is not None:
            logger.warning("transactional id fenced: starting a new session")
            self._outbox.put_nowait(None)

    def _end_transactions(self) -> None:
        txn, self._txn = self._txn, None
        if txn is not None:
            txn.close_session()
            # After the tasks already queued: they see the session closed and do nothing.
            self._executor.submit(txn.close)

    async def _close_when_stopped(self, outbox: asyncio.Queue[_Outgoing]) -> None:
        """On stop: withdraw credit, let in-flight tasks finish, then end the stream."""
        await self._stop.wait()
        outbox.put_nowait(_credit(0))
        deadline = time.monotonic() + self.settings.process.drain_timeout_s
        while self._inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        outbox.put_nowait(None)

    # -- mesh mode --------------------------------------------------------------------
    async def _subscribe(self, endpoint: str) -> None:
        """Open the MeshData subscription; the first refusal is a configuration error."""
        s = self.settings
        subscription = mesh_pb2.Subscription(
            subscriber_id=self.worker_id,
            domains=[s.mesh.mesh_domain],
            node_id=s.mesh.mesh_node_id or "",
        )
        self._mesh = Subscriber(
            endpoint,
            subscription,
            on_envelope=self._inbox.accept,
            on_lost=self._mesh_lost,
            max_backoff_s=s.worker.reconnect_max_backoff_s,
            security=self._security,
        )
        self._mesh.start()
        live = asyncio.ensure_future(self._mesh.wait_live())
        stopped = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({live, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not live.done():
            live.cancel()
            return
        try:
            node = live.result()
        except SubscriptionRefused as exc:
            variable = "MESH_NODE_ID" if exc.code == "FAILED_PRECONDITION" else "MESH_DOMAIN"
            raise ConfigError(variable, f"mesh node at {endpoint} refused: {exc.detail}") from exc
        logger.info("taking tasks by mesh", extra={"node": node, "domain": s.mesh.mesh_domain})

    def _take_mesh_task(self, task: runner_pb2.Task) -> None:
        self._start_task(self._session, task)

    def _mesh_lost(self) -> None:
        """An open subscription broke: end this session once what it received is done."""
        outbox = self._outbox
        if outbox is None or not self._inbox.session_id or self._stop.is_set():
            return
        if self._rotation is not None and not self._rotation.done():
            return
        self._inbox.close_session()  # its envelopes still arriving are requeued anyway
        self._rotation = asyncio.get_running_loop().create_task(self._end_session(outbox))

    async def _end_session(self, outbox: asyncio.Queue[_Outgoing]) -> None:
        logger.warning("mesh subscription lost: ending the session so its tasks are requeued")
        outbox.put_nowait(_credit(0))
        deadline = time.monotonic() + self.settings.process.drain_timeout_s
        while self._inflight and time.monotonic() < deadline and self._outbox is outbox:
            await asyncio.sleep(0.02)
        if self._outbox is outbox:
            outbox.put_nowait(None)

    # -- tasks ------------------------------------------------------------------------
    def _start_task(self, session: int, task: runner_pb2.Task) -> None:
        m.observe_age(m.AGE_RECEIVED, _first_timestamp_ms(task))
        self._inflight[task.task_id] = time.monotonic()
        self._last_activity = time.monotonic()
        loop = asyncio.get_running_loop()
        assert self._pipeline is not None
        pipeline = self._pipeline
        txn = self._txn if task.group_metadata else None
        acked = [False]

        def done(error: str | None, written: Mapping[str, int]) -> None:
            loop.call_soon_threadsafe(self._finish, session, task, error, False, acked, written)

        def work() -> None:
            with self._waiting_lock:
                self._waiting -= 1
            try:
                item = WorkItem.from_task(task)
                if txn is not None:
                    tp = (task.records.topic, task.records.partition)
                    txn.run(
                        TransactionalTask(item, tp, task.commit_offset, task.group_metadata),
                        done,
                    )
                else:
                    pipeline.run(item, done)
            except Exception as exc:
                logger.warning("task rejected", extra={"task": task.task_id, "error": repr(exc)})
                loop.call_soon_threadsafe(self._finish, session, task, repr(exc), True, acked)

        if task.group_metadata and txn is None:
            # A transactional task on a session without a producer: never write it
            # outside a transaction.
            self._finish(session, task, "no transactional producer", False, acked)
            return
        with self._waiting_lock:
            self._waiting += 1
        loop.run_in_executor(self._executor, work)

    def _finish(
        self,
        session: int,
        task: runner_pb2.Task,
        error: str | None,
        rejected: bool,
        acked: list[bool],
        written: Mapping[str, int] | None = None,
    ) -> None:
        if acked[0]:
            return  # a rejected task's earlier writes reporting in: already answered
        acked[0] = True
        task_id = task.task_id
        started = self._inflight.pop(task_id, None)
        self._last_activity = time.monotonic()
        if session != self._session or self._outbox is None or started is None:
            return  # that stream is gone; the supervisor has requeued the task
        msg = runner_pb2.WorkerMessage()
        msg.ack.task_id = task_id
        if rejected:
            msg.ack.status = runner_pb2.ACK_STATUS_REJECT
            msg.ack.error = (error or "")[:1024]
            status = "reject"
        elif error:
            msg.ack.status = runner_pb2.ACK_STATUS_RETRY
            msg.ack.error = error[:1024]
            status = "retry"
        else:
            msg.ack.status = runner_pb2.ACK_STATUS_OK
            write_proof.fill(msg.ack.proof, task.records.offsets, written or {})
            m.observe_age(m.AGE_WRITTEN, _first_timestamp_ms(task))
            status = "ok"
        m.WORKER_TASKS.labels(status).inc()
        m.WORKER_TASK_SECONDS.observe(time.monotonic() - started)
        self._outbox.put_nowait(msg)


def _first_timestamp_ms(task: runner_pb2.Task) -> int:
    stamps = task.records.timestamps_ms
    return stamps[0] if stamps else -1


def _credit(available: int) -> runner_pb2.WorkerMessage:
    msg = runner_pb2.WorkerMessage()
    msg.credit.available = available
    return msg


async def _drain_outbox(outbox: asyncio.Queue[_Outgoing]):  # type: ignore[no-untyped-def]
    while True:
        item = await outbox.get()
        if item is None:
            return
        yield item


def run_worker(settings: Settings) -> int:
    """Entry point for `streamplane worker`."""
    worker = Worker(settings)
    runtime.tune_gc()
    return asyncio.run(worker.run())
