"""A node's routing table: local, forward through the hub, or refuse; never a loop."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamplane.exceptions import ConfigError
from streamplane.platform.mesh.manifest import Manifest, NodeSpec, parse_manifest
from streamplane.platform.mesh.routing import (
    MAX_HOPS,
    Forward,
    Local,
    Reject,
    RejectReason,
    RoutingTable,
)

MANIFEST = parse_manifest(
    {
        "nodes": [
            {"id": "hub", "role": "hub", "endpoint": "127.0.0.1:9001"},
            {
                "id": "worker",
                "role": "worker",
                "endpoint": "127.0.0.1:9002",
                "domains": ["default"],
            },
            {"id": "trainer", "role": "trainer", "endpoint": "127.0.0.1:9003", "domains": ["rl"]},
            {
                "id": "worker-b",
                "role": "worker",
                "endpoint": "127.0.0.1:9004",
                "domains": ["default", "fast"],
            },
        ]
    }
)


def _ids(route: object) -> list[str]:
    assert isinstance(route, Forward), route
    return [n.id for n in route.nodes]


def test_a_node_delivers_what_it_serves() -> None:
    assert RoutingTable(MANIFEST, "worker").route("default") == Local()
    assert RoutingTable(MANIFEST, "worker").route("default", "worker") == Local()


def test_a_node_forwards_the_rest_through_the_hub() -> None:
    table = RoutingTable(MANIFEST, "worker")
    assert _ids(table.route("rl")) == ["hub"]
    assert _ids(table.route("default", "worker-b")) == ["hub"]


def test_the_hub_forwards_to_the_target_or_every_serving_node() -> None:
    hub = RoutingTable(MANIFEST, "hub")
    assert _ids(hub.route("rl")) == ["trainer"]
    assert _ids(hub.route("default")) == ["worker", "worker-b"]
    assert _ids(hub.route("default", "worker-b", hops=1)) == ["worker-b"]


@pytest.mark.parametrize(
    ("node", "domain", "target", "reason"),
    [
        ("worker", "nowhere", "", RejectReason.UNKNOWN_DOMAIN),
        ("hub", "default", "ghost", RejectReason.UNKNOWN_NODE),
        ("hub", "rl", "worker", RejectReason.NOT_SERVED),
        ("worker", "fast", "worker", RejectReason.NOT_SERVED),
    ],
)
def test_what_cannot_be_delivered_is_refused(
    node: str, domain: str, target: str, reason: RejectReason
) -> None:
    route = RoutingTable(MANIFEST, node).route(domain, target)
    assert isinstance(route, Reject)
    assert route.reason is reason


def test_a_second_forward_is_a_loop() -> None:
    # The hub sent it to "worker", which does not serve it: the manifests disagree.
    route = RoutingTable(MANIFEST, "worker").route("rl", hops=1)
    assert isinstance(route, Reject)
    assert route.reason is RejectReason.LOOP
    route = RoutingTable(MANIFEST, "hub").route("rl", hops=MAX_HOPS)
    assert isinstance(route, Reject)
    assert route.reason is RejectReason.LOOP


def test_a_node_missing_from_the_manifest_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        RoutingTable(MANIFEST, "ghost")
    assert caught.value.variable == "MESH_NODE_ID"


# -- property: from any node, any served domain is reached within MAX_HOPS forwards ------
_DOMAINS = ["a", "b", "c", "d"]


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    count = draw(st.integers(1, 6))
    hub_index = draw(st.integers(0, count - 1))
    nodes = []
    for i in range(count):
        domains = draw(st.lists(st.sampled_from(_DOMAINS), unique=True, max_size=3))
        role = "hub" if i == hub_index else draw(st.sampled_from(["worker", "trainer", "x"]))
        nodes.append(
            {"id": f"n{i}", "role": role, "endpoint": f"127.0.0.1:{9001 + i}", "domains": domains}
        )
    return parse_manifest({"nodes": nodes})


def _walk(manifest: Manifest, start: str, domain: str, target: str) -> list[NodeSpec]:
    """Follow the routing decisions (first candidate on each forward); returns the path."""
    node = manifest.node(start)
    assert node is not None
    path = [node]
    hops = 0
    while True:
        route = RoutingTable(manifest, node.id).route(domain, target, hops)
        if isinstance(route, Local):
            return path
        assert isinstance(route, Forward), (path, route)
        assert route.nodes
        node = route.nodes[0]
        path.append(node)
        hops += 1
        assert hops <= MAX_HOPS, path


@settings(max_examples=300, derandomize=True, database=None)
@given(data=st.data(), manifest=manifests())
def test_every_served_domain_is_reached_from_every_node(
    data: st.DataObject, manifest: Manifest
) -> None:
    start = data.draw(st.sampled_from([n.id for n in manifest.nodes]))
    domain = data.draw(st.sampled_from(_DOMAINS))
    serving = manifest.serving(domain)
    targeted = data.draw(st.booleans()) and bool(serving)
    target = data.draw(st.sampled_from([n.id for n in serving])) if targeted else ""
    if not serving:
        route = RoutingTable(manifest, start).route(domain, target)
        assert isinstance(route, Reject)
        assert route.reason is RejectReason.UNKNOWN_DOMAIN
        return
    path = _walk(manifest, start, domain, target)
    end = path[-1]
    assert domain in end.domains
    if target:
        assert end.id == target
    # Every forward but the last goes through the hub.
    assert all(n.is_hub for n in path[1:-1])


@settings(max_examples=200, derandomize=True, database=None)
@given(data=st.data(), manifest=manifests())
def test_every_hub_forward_candidate_serves_the_domain(
    data: st.DataObject, manifest: Manifest
) -> None:
    domain = data.draw(st.sampled_from(_DOMAINS))
    route = RoutingTable(manifest, manifest.hub.id).route(domain)
    if isinstance(route, Forward):
        assert all(domain in n.domains for n in route.nodes)
        assert {n.id for n in route.nodes} == {n.id for n in manifest.serving(domain)}
