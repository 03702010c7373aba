"""Wires the supervisor together (`build`) and runs it (`run`): serve, consume, drain."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Iterator, Sequence
from typing import Any

import uvicorn

from streamplane.config import Settings, parse_listen
from streamplane.platform import metrics as m
from streamplane.platform import rpc, runtime
from streamplane.platform.kafka import admin
from streamplane.platform.kafka.config import consumer_config, producer_config
from streamplane.platform.kafka.consumer import GroupConsumer
from streamplane.platform.kafka.producer import DurableProducer
from streamplane.platform.mesh.client import MeshClient
from streamplane.platform.supervisor.api import create_app
from streamplane.platform.supervisor.batching import Batcher
from streamplane.platform.supervisor.dead_letter_counts import (
    TenantCountingDeadLetters,
    dead_letter_status,
)
from streamplane.platform.supervisor.dispatcher import Dispatcher, Events
from streamplane.platform.supervisor.domain_scheduler import DomainScheduler
from streamplane.platform.supervisor.extensions import SupervisorExtension
from streamplane.platform.supervisor.mesh_dispatch import MeshTransport, mesh_config
from streamplane.platform.supervisor.readiness import announce
from streamplane.platform.supervisor.scheduler import Scheduler
from streamplane.platform.supervisor.service import RunnerService, create_server, set_serving
from streamplane.platform.supervisor.source import Source
from streamplane.platform.supervisor.task_queue import TaskQueue
from streamplane.platform.supervisor.transactions import SupervisorTransactions

logger = logging.getLogger(__name__)

# Housekeeping cadence: leases, metrics and gauges need no finer grain than this.
HOUSEKEEPING_S = 0.5


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the supervisor owns SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Supervisor:
    """One supervisor process: construct (no I/O), then `await run()`."""

    def __init__(self, settings: Settings, extensions: Sequence[SupervisorExtension] = ()) -> None:
        self.settings = settings
        self.extensions = tuple(extensions)
        self.stop = asyncio.Event()
        self.grpc_port: int | None = None
        self.http_port: int | None = None
        self._prefix = f"{socket.gethostname()}-{os.getpid()}"
        self._last_events = Events()
        self._next_housekeeping = 0.0
        self._serving = False
        self._queued_labels: set[str] = set()

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT or `stop`, then drain; returns the exit code."""
        self.build()
        server, health = await self._serve_grpc()
        http, http_task = await self._serve_http()
        self._install_signals()
        assert self.grpc_port is not None  # bound by now
        assert self.http_port is not None
        announce(self.settings.supervisor.supervisor_ready_file, self.grpc_port, self.http_port)
        logger.info("supervisor started", extra={"settings": _loggable(self.settings)})
        source_task = asyncio.create_task(self.source.run(self.stop))
        stop_task = asyncio.create_task(self.stop.wait())
        await asyncio.wait({source_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        self.stop.set()
        await source_task  # re-raises a consumer failure
        await self._drain()
        await asyncio.get_running_loop().run_in_executor(None, self._stop_extensions)
        await self.source.close()
        self._serving = False
        await set_serving(health, False)
        # Sessions end as the server stops, and each ending fences: close after it.
        await server.stop(grace=2)
        if self.transactions is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.transactions.close)
        if self.mesh is not None:
            await self.mesh.close_all()
        http.should_exit = True
        await http_task
        logger.info("supervisor stopped")
        return 0

    # -- build ---------------------------------------------------------------------------
    def build(self) -> None:
        """Create the topics if missing and every part; starts nothing."""
        s = self.settings
        mesh = mesh_config(s)  # fails at start, naming the variable, if half configured
        kafka = s.kafka.as_librdkafka_dict()
        admin.ensure_topics_like(
            kafka, s.kafka.input_topic, [s.kafka.output_topic, s.kafka.dlq_topic]
        )
        scheduler: TaskQueue
        if mesh is None:
            scheduler = Scheduler(quantum=s.supervisor.batch_max_records)
        else:
            scheduler = domains = DomainScheduler(s.supervisor.batch_max_records, mesh.tenants)
        sup = s.supervisor
        self.transactions: SupervisorTransactions | None = None
        self.dlq: TenantCountingDeadLetters | SupervisorTransactions
        if sup.exactly_once:
            self.dlq = self.transactions = SupervisorTransactions(
                producer_conf=producer_config(s, f"{self._prefix}-txn"),
                consumer_conf=consumer_config(s),
                dlq_topic=s.kafka.dlq_topic,
                id_prefix=f"{s.kafka.consumer_group}-{self._prefix}",
                timeout_ms=sup.transaction_timeout_ms,
                group_metadata=lambda: self.source.group_metadata,
            )
        else:
            self.dlq = TenantCountingDeadLetters(
                DurableProducer(producer_config(s, f"{self._prefix}-dlq")),
                s.kafka.dlq_topic,
                on_count=lambda kind, n: m.DEAD_LETTERED.labels(kind).inc(n),
            )
        self.dispatcher = Dispatcher(
            scheduler=scheduler,
            dead_letters=self.dlq,
            max_attempts=sup.max_attempts,
            lease_timeout_s=sup.lease_timeout_s,
            retry_backoff_s=sup.retry_backoff_ms / 1000,
            clock=time.monotonic,
            id_prefix=self._prefix,
            on_acked=m.TASK_SECONDS.observe,
            transactions=self.transactions,
        )
        self.source = self._build_source(meshed=mesh is not None)
        self.mesh: MeshTransport | None = None
        if mesh is not None:
            self.mesh = MeshTransport(
                mesh,
                domains,
                holds=self.dispatcher.holds,
                unsent=self._unsent,
                client=MeshClient(security=rpc.Security.of(s.rpc)),
            )
        # An ack or new credit closes lingering batches at once, not at the source's next
        # tick (up to a consume timeout later): at half load that tick was a share of
        # every credit cycle (p99 75-98 ms against 88-169 ms at 38k/s).
        self.service = RunnerService(
            self.dispatcher,
            self._welcome_config(),
            on_change=self.source.dispatch_now,
            mesh=self.mesh,
        )

    def _build_source(self, meshed: bool) -> Source:
        s, sup = self.settings, self.settings.supervisor
        batcher = Batcher(
            ordering=sup.ordering,
            max_records=sup.batch_max_records,
            max_bytes=sup.batch_max_bytes,
            linger_s=sup.batch_linger_ms / 1000,
            id_prefix=self._prefix,
            emit=self.dispatcher.submit,
            max_age_s=sup.batch_max_age_ms / 1000,
            # Under a mesh, tenants keep batches of their own: a task's tenant picks its
            # domain there (MESH_TENANT_DOMAIN_MAP).
            contended=None if meshed else self._tasks_wait,
        )
        return Source(
            consumer_factory=lambda: GroupConsumer(consumer_config(s)),
            topic=s.kafka.input_topic,
            dispatcher=self.dispatcher,
            batcher=batcher,
            high_mark=sup.max_pending_records,
            low_mark=sup.resume_mark,
            linger_s=sup.batch_linger_ms / 1000,
            commit_interval_s=sup.commit_interval_ms / 1000,
            on_tick=self._housekeeping,
            commits=not sup.exactly_once,
        )

    def _tasks_wait(self) -> bool:
        """Whether closed tasks wait for a worker (delayed retries included)."""
        return self.dispatcher.scheduler.queued_tasks > 0

    # -- serve ---------------------------------------------------------------------------
    async def _serve_grpc(self) -> tuple[Any, Any]:
        server, self.grpc_port, health = create_server(
            _grpc_address(self.settings.supervisor.supervisor_listen),
            self.service,
            rpc.Security.of(self.settings.rpc),
        )
        await server.start()
        await set_serving(health, True)
        self._serving = True
        for extension in self.extensions:
            extension.start()
        return server, health

    async def _serve_http(self) -> tuple[_QuietServer, asyncio.Task[None]]:
        http = self._http_server()
        http_task = asyncio.create_task(http.serve())
        while not http.started:
            if http_task.done():
                await http_task  # raises the bind error
                listen = self.settings.supervisor.supervisor_http_listen
                raise OSError(f"HTTP server on {listen} did not start")
            await asyncio.sleep(0.01)
        self.http_port = http.servers[0].sockets[0].getsockname()[1]
        return http, http_task

    def _stop_extensions(self) -> None:
        for extension in self.extensions:
            extension.stop(timeout=self.settings.process.drain_timeout_s)

    # -- drain ---------------------------------------------------------------------------
    async def _drain(self) -> None:
        """Consume no more; finish what was consumed (bounded by DRAIN_TIMEOUT_S).

        Records already taken from Kafka are dispatched and finished first, so a graceful
        stop writes nothing twice; what the deadline cuts off is requeued, not committed,
        and the next owner reads it again.
        """
        deadline = time.monotonic() + self.settings.process.drain_timeout_s
        self.source.flush_open_batches()
        while self.dispatcher.pending_records and time.monotonic() < deadline:
            if not self.dispatcher.workers:
                break  # nobody to finish it: the next owner will
            self.dispatcher.dispatch()
            self._housekeeping()
            await asyncio.sleep(0.02)
        self.dispatcher.draining = True
        self.service.drain_all("supervisor stopping")
        while self.dispatcher.inflight_tasks() and time.monotonic() < deadline:
            self._housekeeping()
            await asyncio.sleep(0.02)
        left = self.dlq.flush(max(0.1, deadline - time.monotonic()))
        self._housekeeping()
        logger.info(
            "drained",
            extra={"inflight_left": self.dispatcher.inflight_tasks(), "dlq_left": left},
        )

    # -- callbacks ----------------------------------------------------------------------
    def _unsent(self, session: str, wire_id: str, error: str) -> None:
        self.dispatcher.unsent(session, wire_id, error)
        self.dispatcher.dispatch()

    def _housekeeping(self) -> None:
        self.dlq.poll()
        now = time.monotonic()
        if now < self._next_housekeeping:
            return
        self._next_housekeeping = now + HOUSEKEEPING_S
        if self.dispatcher.expire_leases():
            self.dispatcher.dispatch()
        self._sync_metrics()

    def _sync_metrics(self) -> None:
        d = self.dispatcher
        e, last = d.events, self._last_events
        m.RECORDS_DONE.inc(e.records_done - last.records_done)
        m.REDELIVERIES.inc(e.redelivered - last.redelivered)
        for reason, count in e.failures.items():
            m.TASK_FAILURES.labels(reason).inc(count - last.failures.get(reason, 0))
        self._last_events = Events(
            dispatched=e.dispatched,
            acked=e.acked,
            records_done=e.records_done,
            redelivered=e.redelivered,
            dead_lettered=e.dead_lettered,
            late_acks=e.late_acks,
            failures=dict(e.failures),
        )
        m.PENDING_RECORDS.set(d.pending_records)
        m.INFLIGHT_TASKS.set(d.inflight_tasks())
        by_label: dict[str, int] = dict.fromkeys(self._queued_labels, 0)
        for tenant, queued in d.scheduler.tenant_backlog().items():
            label = m.tenant_label(tenant)
            by_label[label] = by_label.get(label, 0) + queued
        for label, queued in by_label.items():
            m.QUEUED_RECORDS.labels(label).set(queued)
        # A tenant whose queue drained leaves the scheduler; its gauge must read 0.
        self._queued_labels = {label for label, queued in by_label.items() if queued}

    # -- readiness and status -----------------------------------------------------------
    def readiness(self) -> str | None:
        """None when ready; else why not."""
        if not self._serving:
            return "gRPC server not serving"
        if not self.source.assigned:
            return "consumer holds no partition assignment yet"
        if self.dispatcher.draining:
            return "draining"
        for extension in self.extensions:
            problem = extension.problem()
            if problem is not None:
                return f"{extension.name}: {problem}"
        return None

    def status(self) -> dict[str, Any]:
        """A JSON-able snapshot for /v1/status."""
        d = self.dispatcher
        return {
            "assigned": sorted(p for _, p in self.source.assigned),
            "paused": self.source.paused,
            "pending_records": d.pending_records,
            "queued_records": d.scheduler.queued_records,
            "inflight_tasks": d.inflight_tasks(),
            "committable": {f"{t}/{p}": o for (t, p), o in d.committable().items()},
            "processing_guarantee": self.settings.supervisor.processing_guarantee,
            "events": {
                "dispatched": d.events.dispatched,
                "acked": d.events.acked,
                "records_done": d.events.records_done,
                "redelivered": d.events.redelivered,
                "dead_lettered": d.events.dead_lettered,
                "late_acks": d.events.late_acks,
                "failures": d.events.failures,
            },
            # This supervisor's own dead letters (records out of attempts); workers count
            # theirs (parse, schema) on their own /metrics (WORKER_METRICS_LISTEN).
            "dead_letters": dead_letter_status(),
            "tenants": {
                tenant: {"queued_records": queued}
                for tenant, queued in sorted(d.scheduler.tenant_backlog().items())
            },
        }

    # -- setup helpers ------------------------------------------------------------------
    def _welcome_config(self) -> dict[str, str]:
        s = self.settings
        return {
            "output_topic": s.kafka.output_topic,
            "dlq_topic": s.kafka.dlq_topic,
            "ordering": s.supervisor.ordering,
            "processing_guarantee": s.supervisor.processing_guarantee,
            "transaction_timeout_ms": str(s.supervisor.transaction_timeout_ms),
        }

    def _http_server(self) -> _QuietServer:
        from streamplane.platform.supervisor import http_server

        host, port = parse_listen(self.settings.supervisor.supervisor_http_listen)
        # The API docs describe every route, the training API's too: served on loopback
        # only (docs/security.md).
        docs = http_server.is_loopback(host)
        app = create_app(self.dispatcher, self.readiness, self.status, docs=docs)
        for extension in self.extensions:
            router = extension.router()
            if router is not None:
                app.include_router(router)
        return _QuietServer(http_server.server_config(app, host, port))

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)


def _grpc_address(listen: str) -> str:
    host, port = parse_listen(listen)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _loggable(settings: Settings) -> str:
    shown = settings.redacted()
    return ",".join(f"{k}={v}" for k, v in shown.items() if v is not None)


def run_supervisor(settings: Settings, extensions: Sequence[SupervisorExtension] = ()) -> int:
    """Entry point for `streamplane supervisor`, with the applications it hosts."""
    supervisor = Supervisor(settings, extensions)
    runtime.tune_gc()
    return asyncio.run(supervisor.run())
