"""A mesh node: the MeshData service over local subscriber queues and a routing table.

`streamplane mesh-node --node-id ID --listen ADDR --services FILE` runs one. A Publish is
answered only once the envelope sits in a subscriber queue, here or (forwarded) at
its destination; otherwise it fails with a status that says why:

- UNAVAILABLE: no subscriber can take it, or the next node is out of reach;
- RESOURCE_EXHAUSTED: the subscriber's queue (or every candidate's) is full;
- NOT_FOUND: no node serves the domain, or the target node is unknown or does not
  serve it;
- INVALID_ARGUMENT: the envelope lacks an id or a domain;
- FAILED_PRECONDITION: a routing loop (the nodes' manifests disagree).

The trailing metadata ``sp-mesh-reason`` carries the short reason.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeAlias

import grpc
from grpc_health.v1 import health, health_pb2
from prometheus_client import start_http_server

from streamplane.config import parse_listen
from streamplane.exceptions import ConfigError
from streamplane.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from streamplane.platform import metrics as m
from streamplane.platform import rpc
from streamplane.platform.mesh.client import (
    NODE_METADATA,
    REASON_METADATA,
    MeshClient,
)
from streamplane.platform.mesh.exceptions import PublishError
from streamplane.platform.mesh.manifest import Manifest, load_manifest
from streamplane.platform.mesh.routing import Forward, Local, Reject, RejectReason, RoutingTable
from streamplane.platform.mesh.subscribers import Offer, Subscribers

logger = logging.getLogger(__name__)

SERVICE_NAME = "streamplane.mesh.v1.MeshData"
# A subscriber queue holds what its consumer has not taken yet. A worker is sent at most
# MAX_INFLIGHT tasks, so a few hundred is ample; the bound keeps a stuck consumer from
# growing the node's memory without limit (publishers see RESOURCE_EXHAUSTED).
DEFAULT_QUEUE_CAPACITY = 256
# Nodes stop within this after SIGTERM; subscribers get what was queued first.
STOP_GRACE_S = 2.0
# Metric label for a domain the manifest does not know (keeps label sets bounded).
UNKNOWN_DOMAIN_LABEL = "unknown"

_REJECT_CODES = {
    RejectReason.UNKNOWN_DOMAIN: grpc.StatusCode.NOT_FOUND,
    RejectReason.UNKNOWN_NODE: grpc.StatusCode.NOT_FOUND,
    RejectReason.NOT_SERVED: grpc.StatusCode.NOT_FOUND,
    RejectReason.LOOP: grpc.StatusCode.FAILED_PRECONDITION,
}

_Context: TypeAlias = "grpc.aio.ServicerContext[mesh_pb2.Envelope, mesh_pb2.PublishReply]"
_SubscribeContext: TypeAlias = "grpc.aio.ServicerContext[mesh_pb2.Subscription, mesh_pb2.Envelope]"


class MeshNode(mesh_pb2_grpc.MeshDataServicer):
    """Serves MeshData for one node of the manifest."""

    def __init__(
        self,
        node_id: str,
        manifest: Manifest,
        *,
        client: MeshClient | None = None,
        queue_capacity: int = DEFAULT_QUEUE_CAPACITY,
    ) -> None:
        self.routes = RoutingTable(manifest, node_id)
        self.node_id = node_id
        self.manifest = manifest
        self._client = client or MeshClient()
        self.subscribers = Subscribers(queue_capacity, on_dropped=self._dropped)

    # -- Publish ----------------------------------------------------------------------
    async def Publish(self, request: mesh_pb2.Envelope, context: _Context) -> mesh_pb2.PublishReply:
        """Place the envelope in a subscriber queue, here or through the hub."""
        domain = self._label(request.domain)
        if not request.id or not request.domain:
            return await self._refuse(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "bad-envelope",
                domain,
                "an envelope needs an id and a domain",
            )
        route = self.routes.route(request.domain, request.target_node, request.hops)
        if isinstance(route, Reject):
            return await self._refuse(
                context, _REJECT_CODES[route.reason], route.reason.value, domain, route.detail
            )
        if isinstance(route, Local):
            return await self._deliver(request, context, domain)
        return await self._forward(request, route, context, domain)

    async def _deliver(
        self, request: mesh_pb2.Envelope, context: _Context, domain: str
    ) -> mesh_pb2.PublishReply:
        delivery = self.subscribers.deliver(request)
        if delivery.outcome is Offer.NO_SUBSCRIBER:
            who = request.target_subscriber or f"of domain {request.domain!r}"
            return await self._refuse(
                context,
                grpc.StatusCode.UNAVAILABLE,
                delivery.outcome.value,
                domain,
                f"no subscriber {who} on node {self.node_id!r}",
            )
        if delivery.outcome is Offer.QUEUE_FULL:
            return await self._refuse(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                delivery.outcome.value,
                domain,
                f"subscriber queue full on node {self.node_id!r}",
            )
        m.MESH_NODE_DELIVERED.labels(domain).inc()
        m.MESH_NODE_QUEUE_DEPTH.labels(domain).inc()
        return mesh_pb2.PublishReply(
            id=request.id,
            node_id=self.node_id,
            subscriber_id=delivery.subscriber_id,
            queue_depth=delivery.depth,
        )

    async def _forward(
        self, request: mesh_pb2.Envelope, route: Forward, context: _Context, domain: str
    ) -> mesh_pb2.PublishReply:
        forwarded = mesh_pb2.Envelope()
        forwarded.CopyFrom(request)
        forwarded.hops = request.hops + 1
        remaining = context.time_remaining()
        errors: list[PublishError] = []
        for node in route.nodes:
            try:
                reply = await self._client.publish(node.endpoint, forwarded, remaining)
            except PublishError as exc:
                errors.append(exc)
                continue
            m.MESH_NODE_FORWARDED.labels(domain).inc()
            return reply
        # Every candidate failed: report the most useful reason (a full queue means a
        # subscriber exists and retrying soon will work).
        best = next((e for e in errors if e.code == "RESOURCE_EXHAUSTED"), errors[-1])
        names = ", ".join(repr(n.id) for n in route.nodes)
        code = getattr(grpc.StatusCode, best.code, grpc.StatusCode.UNAVAILABLE)
        return await self._refuse(
            context, code, best.reason, domain, f"via node(s) {names}: {best.detail}"
        )

    async def _refuse(
        self,
        context: _Context,
        code: grpc.StatusCode,
        reason: str,
        domain: str,
        detail: str,
    ) -> mesh_pb2.PublishReply:
        m.MESH_NODE_REJECTED.labels(domain, reason).inc()
        context.set_trailing_metadata(((REASON_METADATA, reason),))
        await context.abort(code, detail)
        raise AssertionError("abort returned")  # pragma: no cover - abort always raises

    # -- Subscribe --------------------------------------------------------------------
    async def Subscribe(
        self, request: mesh_pb2.Subscription, context: _SubscribeContext
    ) -> AsyncIterator[mesh_pb2.Envelope]:
        """Stream this subscriber's queue until it unsubscribes or the node stops."""
        refusal = self._check_subscription(request)
        if refusal is not None:
            code, detail = refusal
            logger.warning(
                "subscription refused",
                extra={"subscriber": request.subscriber_id, "reason": detail},
            )
            await context.abort(code, detail)
            return
        domains = frozenset(request.domains)
        queue = self.subscribers.register(request.subscriber_id, domains)
        self._sync_subscribers()
        await context.send_initial_metadata(((NODE_METADATA, self.node_id),))
        logger.info(
            "subscriber joined",
            extra={"subscriber": request.subscriber_id, "domains": ",".join(sorted(domains))},
        )
        try:
            while True:
                envelope = await queue.take()
                if envelope is None:
                    return
                m.MESH_NODE_QUEUE_DEPTH.labels(self._label(envelope.domain)).dec()
                yield envelope
        finally:
            left = self.subscribers.unregister(queue)
            self._sync_subscribers()
            logger.info(
                "subscriber left",
                extra={"subscriber": request.subscriber_id, "undelivered": len(left)},
            )

    def _check_subscription(
        self, request: mesh_pb2.Subscription
    ) -> tuple[grpc.StatusCode, str] | None:
        if not request.subscriber_id:
            return grpc.StatusCode.INVALID_ARGUMENT, "a subscription needs a subscriber_id"
        if request.node_id and request.node_id != self.node_id:
            return (
                grpc.StatusCode.FAILED_PRECONDITION,
                f"this is node {self.node_id!r}, not {request.node_id!r} (check MESH_NODE_ID "
                "and MESH_ENDPOINT)",
            )
        served = self.routes.me.domains
        for domain in request.domains:
            if domain not in served:
                return (
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"node {self.node_id!r} does not serve domain {domain!r} (it serves "
                    f"{sorted(served)}; see MESH_DOMAIN and the manifest)",
                )
        return None

    # -- metrics ----------------------------------------------------------------------
    def _label(self, domain: str) -> str:
        return domain if domain in self.manifest.domains else UNKNOWN_DOMAIN_LABEL

    def _dropped(self, domain: str, count: int) -> None:
        label = self._label(domain)
        m.MESH_NODE_DROPPED.labels(label).inc(count)
        m.MESH_NODE_QUEUE_DEPTH.labels(label).dec(count)
        logger.warning(
            "queued envelopes dropped: their subscriber went away",
            extra={"node": self.node_id, "domain": domain, "count": count},
        )

    def _sync_subscribers(self) -> None:
        counts = self.subscribers.subscribers_by_domain()
        for domain in self.routes.me.domains:
            m.MESH_NODE_SUBSCRIBERS.labels(domain).set(counts.get(domain, 0))

    async def close(self) -> None:
        """End every subscription (after what is queued) and close forwarding channels."""
        self.subscribers.close_all()
        await self._client.close()


def create_server(
    address: str, node: MeshNode, security: rpc.Security | None = None
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """A gRPC server with MeshData and the standard health service; returns the bound port."""
    return rpc.create_server(
        address,
        lambda server: mesh_pb2_grpc.add_MeshDataServicer_to_server(node, server),
        security,
    )


async def serve(
    node_id: str,
    listen: str,
    manifest: Manifest,
    queue_capacity: int = DEFAULT_QUEUE_CAPACITY,
    metrics_listen: str | None = None,
    stop: asyncio.Event | None = None,
    security: rpc.Security | None = None,
) -> int:
    """Run a node until SIGTERM/SIGINT (or `stop`); returns the exit code.

    ``security`` guards the node's port and its forwarding to other nodes alike.
    """
    stop = stop or asyncio.Event()
    client = MeshClient(security=security)
    node = MeshNode(node_id, manifest, client=client, queue_capacity=queue_capacity)
    server, port, health_servicer = create_server(listen, node, security)
    metrics = ""
    if metrics_listen is not None:
        host, metrics_port = parse_listen(metrics_listen)
        http_server, _ = start_http_server(metrics_port, host)
        metrics = f" metrics={http_server.server_port}"
    await server.start()
    serving = health_pb2.HealthCheckResponse.SERVING
    await health_servicer.set(SERVICE_NAME, serving)
    await health_servicer.set("", serving)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    me = node.routes.me
    print(f"mesh node {node_id} ready grpc={port}{metrics}", flush=True)
    logger.info(
        "mesh node started",
        extra={"node": node_id, "role": me.role, "domains": ",".join(me.domains) or "-"},
    )
    await stop.wait()
    await node.close()
    await server.stop(grace=STOP_GRACE_S)
    logger.info("mesh node stopped", extra={"node": node_id})
    return 0


def run_mesh_node(
    node_id: str,
    listen: str | None,
    services_file: Path | None,
    queue_capacity: int = DEFAULT_QUEUE_CAPACITY,
    metrics_listen: str | None = None,
    security: rpc.Security | None = None,
) -> int:
    """Entry point for `streamplane mesh-node`: listen defaults to the manifest's port."""
    manifest = load_manifest(services_file)
    spec = RoutingTable(manifest, node_id).me  # fails naming MESH_NODE_ID if unknown
    host, port = _listen_address("MESH_NODE_LISTEN", listen or f":{spec.port}")
    if metrics_listen is not None:
        _listen_address("MESH_NODE_METRICS_LISTEN", metrics_listen)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return asyncio.run(
        serve(node_id, address, manifest, queue_capacity, metrics_listen, security=security)
    )


def _listen_address(variable: str, value: str) -> tuple[str, int]:
    try:
        return parse_listen(value)
    except ValueError as exc:
        raise ConfigError(variable, str(exc)) from exc
