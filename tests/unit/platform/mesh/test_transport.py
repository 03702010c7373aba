"""MeshTransport: a worker session's route, and the envelope a task becomes."""

from __future__ import annotations

import asyncio

import pytest

from streamplane.mesh.v1 import mesh_pb2
from streamplane.platform.mesh.manifest import load_manifest
from streamplane.platform.mesh.routing import TenantDomains
from streamplane.platform.supervisor.domain_scheduler import DomainScheduler
from streamplane.platform.supervisor.mesh_dispatch import MeshConfig, MeshTransport
from streamplane.platform.supervisor.offsets import OffsetTracker
from streamplane.runner.v1 import runner_pb2
from tests.unit.platform.supervisor.factories import make_task


class FakeClient:
    def __init__(self) -> None:
        self.published: list[tuple[str, mesh_pb2.Envelope]] = []

    async def publish(self, endpoint: str, envelope: mesh_pb2.Envelope) -> None:
        self.published.append((endpoint, envelope))

    async def close(self) -> None:
        pass


def _transport(client: FakeClient, unsent: list[str]) -> tuple[MeshTransport, DomainScheduler]:
    tenants = TenantDomains({"gold": "trainer"}, "default")
    config = MeshConfig("127.0.0.1:9001", "sup-1", load_manifest(None), tenants)
    scheduler = DomainScheduler(8, tenants)
    transport = MeshTransport(
        config,
        scheduler,
        holds=lambda _s, _w: True,
        unsent=lambda _s, wire_id, _why: unsent.append(wire_id),
        client=client,  # type: ignore[arg-type]
    )
    return transport, scheduler


def test_a_task_becomes_an_envelope_for_its_worker() -> None:
    client = FakeClient()
    unsent: list[str] = []

    async def main() -> None:
        transport, scheduler = _transport(client, unsent)
        assert transport.open("sess-1", "trainer-w", "trainer") == {"trainer"}
        task = make_task(("in", 2), [5, 6], OffsetTracker(None), tenant="gold")
        scheduler.push(task)
        assert scheduler.pop_for(["trainer"], 0.0) is task
        task.session = "sess-1"
        task.stamp_attempt()
        transport.send("sess-1", task)
        for _ in range(100):
            if client.published:
                break
            await asyncio.sleep(0)
        await transport.close_all()

    asyncio.run(main())
    [(endpoint, envelope)] = client.published
    assert endpoint == "127.0.0.1:9001"
    assert envelope.domain == "trainer"
    assert (envelope.target_node, envelope.target_subscriber) == ("trainer", "trainer-w")
    assert (envelope.source_node, envelope.tenant) == ("sup-1", "gold")
    assert envelope.headers["sp-session"] == "sess-1"
    wire = runner_pb2.Task.FromString(envelope.payload)
    assert wire.task_id == envelope.id
    assert list(wire.records.offsets) == [5, 6]
    assert unsent == []


def test_stream_workers_serve_the_publish_domain() -> None:
    transport, _ = _transport(FakeClient(), [])
    assert transport.stream_domains == {"default"}


@pytest.mark.parametrize(("node", "words"), [("ghost", "not in the"), ("hub", "serves no domain")])
def test_a_worker_on_an_unknown_or_domainless_node_is_refused(node: str, words: str) -> None:
    transport, _ = _transport(FakeClient(), [])
    with pytest.raises(ValueError, match=words):
        transport.open("s", "w", node)


def test_a_send_without_a_route_gives_the_credit_back() -> None:
    unsent: list[str] = []
    transport, _ = _transport(FakeClient(), unsent)
    task = make_task(("in", 0), [1], OffsetTracker(None))
    task.stamp_attempt()
    transport.send("unknown", task)
    assert unsent == [task.wire_id]
