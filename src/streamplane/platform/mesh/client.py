"""Talking to mesh nodes: publishing envelopes and holding a subscription open.

The one seam where ``grpc.RpcError`` becomes a streamplane error (see `exceptions.py`):
a node says why it refused a publish in the trailing metadata ``sp-mesh-reason``; a
failure that carries none (connection refused, deadline) is the node being out of reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

import grpc

from streamplane.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from streamplane.platform import rpc
from streamplane.platform.mesh.exceptions import (
    PermanentPublishError,
    PublishError,
    SubscriptionLost,
    SubscriptionRefused,
    TransientPublishError,
)
from streamplane.platform.mesh.manifest import grpc_target

logger = logging.getLogger(__name__)

REASON_METADATA = "sp-mesh-reason"
NODE_METADATA = "sp-mesh-node"
# A publish is one queue insert (plus one forward): seconds mean a node is in trouble, and
# the caller's retry policy, not a long wait, is the better answer.
PUBLISH_TIMEOUT_S = 5.0

TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)

CHANNEL_OPTIONS = rpc.channel_options(fast_reconnect=True)

# A subscription answered so is a configuration error (retrying cannot change it).
_REFUSED_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
    }
)


def publish_error(exc: grpc.RpcError) -> PublishError:
    """Translate a failed Publish into a transient or permanent PublishError."""
    code: grpc.StatusCode = exc.code()
    detail = exc.details() or code.name
    reason = _metadata_value(exc.trailing_metadata(), REASON_METADATA) or _default_reason(code)
    if code in TRANSIENT_CODES:
        return TransientPublishError(code.name, reason, detail)
    return PermanentPublishError(code.name, reason, detail)


def _default_reason(code: grpc.StatusCode) -> str:
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return "unreachable"
    name: str = code.name
    return name.lower().replace("_", "-")


def _metadata_value(metadata: Iterable[tuple[str, str | bytes]] | None, key: str) -> str | None:
    for k, v in metadata or ():
        if k == key:
            return v.decode() if isinstance(v, bytes) else str(v)
    return None


class MeshClient:
    """Publishes to mesh nodes; one channel per endpoint, opened on first use."""

    def __init__(
        self, timeout_s: float = PUBLISH_TIMEOUT_S, security: rpc.Security | None = None
    ) -> None:
        self._timeout_s = timeout_s
        self._security = security or rpc.Security()
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, mesh_pb2_grpc.MeshDataStub] = {}

    def stub(self, endpoint: str) -> mesh_pb2_grpc.MeshDataStub:
        """The MeshData stub for a node (created on first use, on the running loop)."""
        target = grpc_target(endpoint)
        stub = self._stubs.get(target)
        if stub is None:
            channel = rpc.channel(target, CHANNEL_OPTIONS, self._security)
            self._channels[target] = channel
            stub = self._stubs[target] = mesh_pb2_grpc.MeshDataStub(channel)
        return stub

    async def publish(
        self, endpoint: str, envelope: mesh_pb2.Envelope, timeout_s: float | None = None
    ) -> mesh_pb2.PublishReply:
        """Publish one envelope; raises TransientPublishError or PermanentPublishError."""
        try:
            reply: mesh_pb2.PublishReply = await self.stub(endpoint).Publish(
                envelope,
                timeout=timeout_s or self._timeout_s,
                metadata=self._security.call_metadata(),
            )
        except grpc.RpcError as exc:
            raise publish_error(exc) from exc
        return reply

    async def close(self) -> None:
        """Close every channel."""
        channels, self._channels, self._stubs = self._channels, {}, {}
        for channel in channels.values():
            await channel.close()


class Subscriber:
    """Keeps one subscription open at a node, resubscribing with backoff when it breaks.

    `on_envelope` gets every envelope (on the event loop); `on_lost` is called when an
    established subscription ends, since what the node still queued for it may be gone.
    The first subscription's outcome is available through `wait_live`: a refusal there
    (a domain the node does not serve, another node id) is a configuration error.
    """

    def __init__(
        self,
        endpoint: str,
        subscription: mesh_pb2.Subscription,
        *,
        on_envelope: Callable[[mesh_pb2.Envelope], object],
        on_lost: Callable[[], None],
        first_backoff_s: float = 0.1,
        max_backoff_s: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        security: rpc.Security | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._security = security or rpc.Security()
        self.subscription = subscription
        self._on_envelope = on_envelope
        self._on_lost = on_lost
        self._first_backoff_s = first_backoff_s
        self._max_backoff_s = max_backoff_s
        self._sleep = sleep
        self.node_id = ""
        self.live = False
        self._was_live = False
        self._first: asyncio.Future[str] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start subscribing in the background (on the running loop)."""
        loop = asyncio.get_running_loop()
        self._first = loop.create_future()
        self._task = loop.create_task(self._run())

    async def wait_live(self) -> str:
        """The node id, once the first subscription is open; raises SubscriptionRefused."""
        assert self._first is not None, "start() first"
        return await asyncio.shield(self._first)

    async def close(self) -> None:
        """Stop subscribing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        reconnect = rpc.Reconnect(self._first_backoff_s, self._max_backoff_s)
        target = grpc_target(self.endpoint)
        async with rpc.channel(target, CHANNEL_OPTIONS, self._security) as channel:
            stub = mesh_pb2_grpc.MeshDataStub(channel)
            while True:
                try:
                    await self._subscribe_once(stub)
                    reconnect.reset()
                except SubscriptionRefused as exc:
                    if self._first is not None and not self._first.done():
                        self._first.set_exception(exc)
                        return
                    logger.error("mesh subscription refused", extra={"reason": str(exc)})
                except SubscriptionLost as exc:
                    if self._was_live:
                        logger.warning("mesh subscription lost", extra={"reason": str(exc)})
                    else:
                        logger.warning("mesh node not reachable yet", extra={"reason": str(exc)})
                await self._sleep(reconnect.next_delay())

    async def _subscribe_once(self, stub: mesh_pb2_grpc.MeshDataStub) -> None:
        self._was_live = False
        call = stub.Subscribe(self.subscription, metadata=self._security.call_metadata())
        try:
            metadata = await call.initial_metadata()
            node_id = _metadata_value(metadata, NODE_METADATA)
            if node_id is None:
                # No node id: the call failed before the node answered (or it is no node).
                raise _subscription_error(await call.code(), await call.details())
            self.node_id = node_id
            self.live = self._was_live = True
            if self._first is not None and not self._first.done():
                self._first.set_result(node_id)
            logger.info(
                "mesh subscription open",
                extra={"node": node_id, "subscriber": self.subscription.subscriber_id},
            )
            async for envelope in call:
                self._on_envelope(envelope)
            raise SubscriptionLost(f"node {node_id} ended the subscription")
        except grpc.RpcError as exc:
            raise _subscription_error(exc.code(), exc.details()) from exc
        finally:
            call.cancel()
            if self.live:
                self.live = False
                self._on_lost()


def _subscription_error(
    code: grpc.StatusCode, details: str | None
) -> SubscriptionLost | SubscriptionRefused:
    name: str = code.name
    if code in _REFUSED_CODES:
        return SubscriptionRefused(name, details or "")
    return SubscriptionLost(f"{name}: {details or ''}")
