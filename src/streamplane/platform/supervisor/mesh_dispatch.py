"""Dispatch through MeshData: the asynchronous publishing pool and the mesh transport.

The dispatcher hands a task to `MeshTransport.send`, which only queues a publish: the
dispatcher never waits on one. The task holds one credit of its worker from that moment
until the worker's ack arrives on the gRPC stream, as on the stream transport. A bounded
pool publishes; a transient failure is retried after 100 ms, doubling up to 3 s, for a
bounded number of attempts. When they run out (or the node says retrying cannot help)
the dispatcher restores the credit and requeues the records (`Dispatcher.unsent`), and
``supervisor_mesh_dispatch_total{status="failure"}`` counts it. Offsets still advance
only on a worker's ack.

Tenants pinned to a domain (MESH_TENANT_DOMAIN_MAP) wait in that domain's fair queue
(`domain_scheduler.py`), and a worker takes tasks only from the domains its mesh node
serves (stream workers: from MESH_PUBLISH_DOMAIN), so a pinned tenant reaches only the
nodes serving its domain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from streamplane.config import Settings, parse_tenant_domain_map
from streamplane.exceptions import ConfigError
from streamplane.mesh.v1 import mesh_pb2
from streamplane.platform import metrics as m
from streamplane.platform.mesh.client import MeshClient
from streamplane.platform.mesh.exceptions import PermanentPublishError, TransientPublishError
from streamplane.platform.mesh.inbox import SESSION_HEADER, TASK_KIND
from streamplane.platform.mesh.manifest import Manifest, check_endpoint, load_manifest
from streamplane.platform.mesh.routing import TenantDomains
from streamplane.platform.rpc import Backoff
from streamplane.platform.supervisor.domain_scheduler import DomainScheduler
from streamplane.platform.supervisor.tasks import Task

logger = logging.getLogger(__name__)

# Publishes in flight at once. Each is one queue insert at a node (plus a forward), so a
# few dozen keep every worker's credit busy while bounding the supervisor's open calls.
PUBLISH_CONCURRENCY = 32


# -- retry policy ------------------------------------------------------------------------
# -- the publishing pool -------------------------------------------------------------------
@dataclass(eq=False, slots=True)
class PublishJob:
    """One task attempt's envelope on its way to a worker's subscriber queue."""

    session: str
    wire_id: str
    envelope: mesh_pb2.Envelope
    failures: int = 0
    cancelled: bool = False
    handle: asyncio.Task[None] | asyncio.TimerHandle | None = field(default=None, repr=False)


class PublishPool:
    """Publishes jobs with bounded concurrency, retrying transient failures with backoff.

    `wanted(job)` is asked before every attempt: once the dispatcher no longer holds the
    attempt (its lease expired, its session ended) the job stops. `on_failed(job, why)`
    gets every job that will not be published, so the dispatcher can release its credit.
    """

    def __init__(
        self,
        publish: Callable[[mesh_pb2.Envelope], Awaitable[object]],
        *,
        wanted: Callable[[PublishJob], bool],
        on_failed: Callable[[PublishJob, str], None],
        backoff: Backoff | None = None,
        concurrency: int = PUBLISH_CONCURRENCY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._publish = publish
        self._wanted = wanted
        self._on_failed = on_failed
        self.backoff = backoff or Backoff()
        self._slots = asyncio.Semaphore(concurrency)
        self._clock = clock
        self._jobs: dict[str, dict[str, PublishJob]] = {}
        self.closed = False

    @property
    def pending(self) -> int:
        """Jobs neither published nor given up."""
        return sum(len(jobs) for jobs in self._jobs.values())

    def submit(self, job: PublishJob) -> None:
        """Start publishing; returns at once (call on the event loop)."""
        if self.closed:
            self._give_up(job, "supervisor stopping", status="cancelled")
            return
        self._jobs.setdefault(job.session, {})[job.wire_id] = job
        m.MESH_PUBLISHES_PENDING.inc()
        self._spawn(job)

    def cancel_session(self, session: str) -> int:
        """Drop every job of a session that ended; returns how many."""
        jobs = self._jobs.pop(session, {})
        for job in jobs.values():
            self._cancel(job)
        m.MESH_PUBLISHES_PENDING.dec(len(jobs))
        m.MESH_DISPATCH.labels("cancelled").inc(len(jobs))
        return len(jobs)

    async def close(self) -> None:
        """Cancel every job and wait for running attempts to end."""
        self.closed = True
        running: list[asyncio.Task[None]] = []
        for session in list(self._jobs):
            for job in self._jobs[session].values():
                if isinstance(job.handle, asyncio.Task):
                    running.append(job.handle)
            self.cancel_session(session)
        for task in running:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- internals ----------------------------------------------------------------------
    def _spawn(self, job: PublishJob) -> None:
        if not job.cancelled:
            job.handle = asyncio.get_running_loop().create_task(self._attempt(job))

    @staticmethod
    def _cancel(job: PublishJob) -> None:
        job.cancelled = True
        if job.handle is not None:
            job.handle.cancel()

    async def _attempt(self, job: PublishJob) -> None:
        async with self._slots:
            if job.cancelled:
                return
            if not self._wanted(job):
                self._finish(job)
                self._give_up(job, "attempt no longer held", status="cancelled")
                return
            started = self._clock()
            try:
                await self._publish(job.envelope)
            except TransientPublishError as exc:
                m.MESH_PUBLISH_SECONDS.observe(self._clock() - started)
                job.failures += 1
                if job.failures < self.backoff.attempts:
                    m.MESH_PUBLISH_RETRIES.labels(exc.reason).inc()
                    delay = self.backoff.delay(job.failures)
                    job.handle = asyncio.get_running_loop().call_later(delay, self._spawn, job)
                    return
                self._finish(job)
                self._give_up(job, f"{job.failures} attempts failed, last: {exc}")
                return
            except PermanentPublishError as exc:
                m.MESH_PUBLISH_SECONDS.observe(self._clock() - started)
                self._finish(job)
                self._give_up(job, f"publish refused: {exc}")
                return
            except Exception as exc:
                # Unexpected (a bug, not the network): give the credit back all the same.
                logger.exception("mesh publish crashed", extra={"task": job.wire_id})
                self._finish(job)
                self._give_up(job, f"publish crashed: {exc!r}")
                return
            m.MESH_PUBLISH_SECONDS.observe(self._clock() - started)
            self._finish(job)
            m.MESH_DISPATCH.labels("success").inc()

    def _finish(self, job: PublishJob) -> None:
        jobs = self._jobs.get(job.session)
        if jobs is not None and jobs.pop(job.wire_id, None) is not None:
            m.MESH_PUBLISHES_PENDING.dec()
            if not jobs:
                del self._jobs[job.session]

    def _give_up(self, job: PublishJob, why: str, status: str = "failure") -> None:
        m.MESH_DISPATCH.labels(status).inc()
        if status == "failure":
            logger.warning(
                "mesh publish failed: credit restored, records requeued",
                extra={"task": job.wire_id, "session": job.session, "reason": why},
            )
        self._on_failed(job, why)


# -- the transport -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MeshConfig:
    """The supervisor's validated mesh settings."""

    endpoint: str
    source_node: str
    manifest: Manifest
    tenants: TenantDomains


def mesh_config(settings: Settings) -> MeshConfig | None:
    """Mesh publishing settings, or None when MESH_PUBLISH_* are unset.

    Raises ConfigError naming the variable when they are set only in part, or when a
    domain (MESH_PUBLISH_DOMAIN, a MESH_TENANT_DOMAIN_MAP pair) is served by no node.
    """
    required = {
        "MESH_PUBLISH_ENDPOINT": settings.mesh.mesh_publish_endpoint,
        "MESH_SOURCE_NODE": settings.mesh.mesh_source_node,
        "MESH_PUBLISH_DOMAIN": settings.mesh.mesh_publish_domain,
    }
    missing = [name for name, value in required.items() if not value]
    if len(missing) == len(required):
        if settings.mesh.mesh_tenant_domain_map:
            raise ConfigError(
                "MESH_TENANT_DOMAIN_MAP", "pins tenants to mesh domains: set MESH_PUBLISH_* too"
            )
        return None
    if missing:
        raise ConfigError(missing[0], f"mesh publishing needs {', '.join(required)}")
    endpoint = str(settings.mesh.mesh_publish_endpoint)
    problem = check_endpoint(endpoint)
    if problem:
        raise ConfigError("MESH_PUBLISH_ENDPOINT", problem)
    manifest = load_manifest(settings.mesh.mesh_services_file)
    pins = parse_tenant_domain_map(settings.mesh.mesh_tenant_domain_map or "")
    tenants = TenantDomains(pins, str(settings.mesh.mesh_publish_domain))
    tenants.check(manifest)
    return MeshConfig(endpoint, str(settings.mesh.mesh_source_node), manifest, tenants)


@dataclass(frozen=True, slots=True)
class _Route:
    node_id: str
    subscriber_id: str


class MeshTransport:
    """The dispatcher's transport for workers that take tasks by MeshData."""

    def __init__(
        self,
        config: MeshConfig,
        scheduler: DomainScheduler,
        *,
        holds: Callable[[str, str], bool],
        unsent: Callable[[str, str, str], None],
        client: MeshClient | None = None,
        backoff: Backoff | None = None,
        concurrency: int = PUBLISH_CONCURRENCY,
    ) -> None:
        self.config = config
        self._scheduler = scheduler
        self._unsent = unsent
        self._client = client or MeshClient()
        self._routes: dict[str, _Route] = {}
        endpoint = config.endpoint
        client_ = self._client
        self.pool = PublishPool(
            lambda envelope: client_.publish(endpoint, envelope),
            wanted=lambda job: holds(job.session, job.wire_id),
            on_failed=lambda job, why: unsent(job.session, job.wire_id, why),
            backoff=backoff,
            concurrency=concurrency,
        )

    @property
    def stream_domains(self) -> frozenset[str]:
        """Domains a worker on the gRPC stream serves: the unpinned tenants'."""
        return frozenset({self.config.tenants.default})

    def open(self, session: str, worker_id: str, node_id: str) -> frozenset[str]:
        """Route a mesh worker's session; returns its domains. Raises ValueError if unknown."""
        node = self.config.manifest.node(node_id)
        if node is None:
            raise ValueError(
                f"mesh node {node_id!r} is not in the supervisor's manifest "
                f"{self.config.manifest.source}"
            )
        if not node.domains:
            raise ValueError(f"mesh node {node_id!r} serves no domain")
        if not set(node.domains) & self.config.tenants.domains:
            logger.warning(
                "mesh worker serves no domain tasks are published to",
                extra={"worker": worker_id, "node": node_id, "domains": ",".join(node.domains)},
            )
        self._routes[session] = _Route(node_id, worker_id)
        return frozenset(node.domains)

    def close(self, session: str) -> None:
        """The session ended: its publishes are moot (the dispatcher requeued its tasks)."""
        if self._routes.pop(session, None) is not None:
            self.pool.cancel_session(session)

    def send(self, session: str, task: Task) -> None:
        """Queue the task's publish; never waits."""
        route = self._routes.get(session)
        if route is None:
            # Not a mesh session (a bug in wiring): give the credit back at once.
            self._unsent(session, task.wire_id, "no mesh route for this session")
            return
        m.TASKS_DISPATCHED.labels(m.tenant_label(task.tenant)).inc()
        m.observe_age(m.AGE_DISPATCHED, task.first_timestamp_ms)
        envelope = mesh_pb2.Envelope(
            id=task.wire_id,
            domain=self._scheduler.domain_of(task),
            source_node=self.config.source_node,
            target_node=route.node_id,
            target_subscriber=route.subscriber_id,
            tenant=task.tenant,
            kind=TASK_KIND,
            payload=task.to_message().task.SerializeToString(),
            headers={SESSION_HEADER: session},
        )
        self.pool.submit(PublishJob(session, task.wire_id, envelope))

    async def close_all(self) -> None:
        """Stop publishing and close the channels."""
        await self.pool.close()
        await self._client.close()
