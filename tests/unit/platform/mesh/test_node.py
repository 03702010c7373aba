"""Mesh nodes in one process: delivery, forwarding through the hub, and every refusal.

Real gRPC servers on 127.0.0.1; the manifest needs fixed ports, so they are picked free
first. Each test runs its own event loop and stops its nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from prometheus_client import REGISTRY

from streamplane.mesh.v1 import mesh_pb2
from streamplane.platform import rpc
from streamplane.platform.mesh.client import MeshClient, Subscriber
from streamplane.platform.mesh.exceptions import (
    PermanentPublishError,
    PublishError,
    SubscriptionRefused,
    TransientPublishError,
)
from streamplane.platform.mesh.manifest import Manifest, parse_manifest
from streamplane.platform.mesh.node import MeshNode, create_server
from tests.support.procs import free_port


@dataclass
class Mesh:
    manifest: Manifest
    nodes: dict[str, MeshNode]
    client: MeshClient
    subscribers: list[Subscriber] = field(default_factory=list)
    security: rpc.Security | None = None

    def endpoint(self, node_id: str) -> str:
        spec = self.manifest.node(node_id)
        assert spec is not None
        return spec.endpoint

    async def publish(self, via: str, **fields: object) -> mesh_pb2.PublishReply:
        envelope = mesh_pb2.Envelope(**fields)  # type: ignore[arg-type]
        return await self.client.publish(self.endpoint(via), envelope, timeout_s=5)

    async def subscribe(
        self, node_id: str, subscriber_id: str, domains: list[str], expect_node: str = ""
    ) -> tuple[Subscriber, list[mesh_pb2.Envelope], list[int]]:
        got: list[mesh_pb2.Envelope] = []
        lost: list[int] = []
        sub = Subscriber(
            self.endpoint(node_id),
            mesh_pb2.Subscription(
                subscriber_id=subscriber_id, domains=domains, node_id=expect_node
            ),
            on_envelope=got.append,
            on_lost=lambda: lost.append(1),
            security=self.security,
        )
        sub.start()
        self.subscribers.append(sub)
        await asyncio.wait_for(sub.wait_live(), 10)
        return sub, got, lost


@contextlib.asynccontextmanager
async def mesh(capacity: int = 4, security: rpc.Security | None = None) -> AsyncIterator[Mesh]:
    """Three nodes; with ``security``, they require it and the test's clients use it."""
    manifest = parse_manifest(
        {
            "nodes": [
                {"id": "hub", "role": "hub", "endpoint": f"127.0.0.1:{free_port()}"},
                {
                    "id": "worker",
                    "role": "worker",
                    "endpoint": f"127.0.0.1:{free_port()}",
                    "domains": ["default"],
                },
                {
                    "id": "trainer",
                    "role": "trainer",
                    "endpoint": f"127.0.0.1:{free_port()}",
                    "domains": ["rl", "default"],
                },
            ]
        }
    )
    nodes: dict[str, MeshNode] = {}
    servers = []
    for spec in manifest.nodes:
        node = nodes[spec.id] = MeshNode(
            spec.id, manifest, client=MeshClient(security=security), queue_capacity=capacity
        )
        server, _, _ = create_server(spec.target, node, security)
        await server.start()
        servers.append(server)
    state = Mesh(manifest, nodes, MeshClient(security=security), security=security)
    try:
        yield state
    finally:
        for sub in state.subscribers:
            await sub.close()
        await state.client.close()
        for node, server in zip(nodes.values(), servers, strict=True):
            await node.close()
            await server.stop(0)


def _run(
    body: Callable[[Mesh], Awaitable[None]],
    capacity: int = 4,
    security: rpc.Security | None = None,
) -> None:
    async def main() -> None:
        async with mesh(capacity, security) as state:
            await asyncio.wait_for(body(state), 30)

    asyncio.run(main())


async def _until(predicate: Callable[[], bool]) -> None:
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


async def _fails(
    call: Awaitable[object], kind: type[PublishError], code: str, reason: str
) -> PublishError:
    with pytest.raises(kind) as caught:
        await call
    assert (caught.value.code, caught.value.reason) == (code, reason), caught.value
    return caught.value


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_publish_returns_once_the_envelope_is_queued_at_its_destination() -> None:
    async def body(state: Mesh) -> None:
        _, got, _ = await state.subscribe("worker", "w1", ["default"], expect_node="worker")
        forwarded = _metric("mesh_node_forwarded_total", domain="default")
        # Published at the trainer node, for the worker node: trainer -> hub -> worker.
        reply = await state.publish(
            "trainer", id="e1", domain="default", target_node="worker", target_subscriber="w1"
        )
        assert (reply.id, reply.node_id, reply.subscriber_id) == ("e1", "worker", "w1")
        assert reply.queue_depth >= 1 or got
        await _until(lambda: len(got) == 1)
        assert got[0].hops == 2
        assert _metric("mesh_node_forwarded_total", domain="default") == forwarded + 2

    _run(body)


def test_with_a_token_nodes_refuse_callers_without_it_and_forward_with_it() -> None:
    async def body(state: Mesh) -> None:
        # The token travels with forwarding too: trainer -> hub -> worker.
        _, got, _ = await state.subscribe("worker", "w1", ["default"], expect_node="worker")
        await state.publish("trainer", id="e1", domain="default", target_node="worker")
        await _until(lambda: len(got) == 1)

        stranger = MeshClient()
        try:
            await _fails(
                stranger.publish(state.endpoint("hub"), mesh_pb2.Envelope(id="x", domain="rl")),
                PermanentPublishError,
                "UNAUTHENTICATED",
                "unauthenticated",
            )
        finally:
            await stranger.close()
        state.security = None
        with pytest.raises(SubscriptionRefused) as caught:
            await state.subscribe("worker", "w2", ["default"])
        assert caught.value.code == "UNAUTHENTICATED"
        assert _metric("grpc_calls_refused_total", method="Subscribe") >= 1

    _run(body, security=rpc.Security(token="mesh-token-0123456789"))


def test_an_untargeted_publish_reaches_any_node_serving_the_domain() -> None:
    async def body(state: Mesh) -> None:
        _, got, _ = await state.subscribe("trainer", "t1", ["rl"])
        reply = await state.publish("worker", id="e2", domain="rl", tenant="gold")
        assert reply.node_id == "trainer"
        await _until(lambda: [e.tenant for e in got] == ["gold"])

    _run(body)


def test_no_subscriber_is_unavailable_and_a_full_queue_is_resource_exhausted() -> None:
    async def body(state: Mesh) -> None:
        await _fails(
            state.publish("hub", id="x", domain="default", target_node="worker"),
            TransientPublishError,
            "UNAVAILABLE",
            "no-subscriber",
        )
        await _fails(
            state.publish("worker", id="y", domain="default", target_subscriber="ghost"),
            TransientPublishError,
            "UNAVAILABLE",
            "no-subscriber",
        )
        # A subscriber that never reads: its queue of 2 fills, the third is refused.
        queue = state.nodes["worker"].subscribers.register("stuck", frozenset({"default"}))
        for i in range(2):
            await state.publish("worker", id=f"f{i}", domain="default", target_subscriber="stuck")
        full = await _fails(
            state.publish(
                "hub", id="f2", domain="default", target_node="worker", target_subscriber="stuck"
            ),
            TransientPublishError,
            "RESOURCE_EXHAUSTED",
            "queue-full",
        )
        assert "via node(s) 'worker'" in full.detail
        assert len(queue) == 2  # nothing accepted was lost, nothing refused was kept

    _run(body, capacity=2)


def test_what_no_node_can_take_is_refused_for_good() -> None:
    async def body(state: Mesh) -> None:
        await _fails(
            state.publish("worker", id="z", domain="nowhere"),
            PermanentPublishError,
            "NOT_FOUND",
            "unknown-domain",
        )
        await _fails(
            state.publish("hub", id="z", domain="rl", target_node="worker"),
            PermanentPublishError,
            "NOT_FOUND",
            "not-served",
        )
        await _fails(
            state.publish("hub", id="", domain="rl"),
            PermanentPublishError,
            "INVALID_ARGUMENT",
            "bad-envelope",
        )
        await _fails(
            state.publish("worker", id="z", domain="rl", hops=1),
            PermanentPublishError,
            "FAILED_PRECONDITION",
            "loop",
        )

    _run(body)


def test_a_node_refuses_a_subscription_it_cannot_serve() -> None:
    async def body(state: Mesh) -> None:
        with pytest.raises(SubscriptionRefused) as caught:
            await state.subscribe("worker", "w1", ["rl"])
        assert caught.value.code == "INVALID_ARGUMENT"
        assert "does not serve domain 'rl'" in caught.value.detail
        with pytest.raises(SubscriptionRefused) as caught:
            await state.subscribe("worker", "w2", ["default"], expect_node="trainer")
        assert caught.value.code == "FAILED_PRECONDITION"

    _run(body)


def test_a_resubscribe_takes_over_the_queue_and_a_lost_queue_is_counted() -> None:
    async def body(state: Mesh) -> None:
        node = state.nodes["worker"]
        old = node.subscribers.register("w1", frozenset({"default"}))
        await state.publish("worker", id="q1", domain="default", target_subscriber="w1")
        sub, got, _ = await state.subscribe("worker", "w1", ["default"])
        assert old.closed
        await _until(lambda: [e.id for e in got] == ["q1"])
        # A subscriber gone with envelopes still queued: counted and logged, not silent.
        ghost = node.subscribers.register("w9", frozenset({"default"}))
        await state.publish("worker", id="q2", domain="default", target_subscriber="w9")
        dropped = _metric("mesh_node_dropped_total", domain="default")
        assert [e.id for e in node.subscribers.unregister(ghost)] == ["q2"]
        assert _metric("mesh_node_dropped_total", domain="default") == dropped + 1
        assert sub.live

    _run(body)


def test_a_stopping_node_ends_subscriptions_after_what_is_queued() -> None:
    async def body(state: Mesh) -> None:
        _sub, got, lost = await state.subscribe("worker", "w1", ["default"])
        await state.publish("worker", id="last", domain="default", target_subscriber="w1")
        state.nodes["worker"].subscribers.close_all()
        await _until(lambda: bool(lost))
        assert [e.id for e in got] == ["last"]

    _run(body)
