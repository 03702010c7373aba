"""Where an envelope goes: a node's routing table, and the supervisor's tenant pins.

A node delivers locally what it serves and forwards the rest: an ordinary node to the
hub, the hub to a node that serves the domain (or to the target node). An envelope is
forwarded at most twice (node -> hub -> node), so manifests that disagree between
nodes end in a refusal, never in a loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from streamplane.exceptions import ConfigError
from streamplane.platform.mesh.manifest import Manifest, NodeSpec

# node -> hub -> node: the longest path a manifest allows.
MAX_HOPS = 2


class RejectReason(StrEnum):
    """Why a node refuses to route an envelope; also a metric label."""

    UNKNOWN_DOMAIN = "unknown-domain"
    UNKNOWN_NODE = "unknown-node"
    NOT_SERVED = "not-served"
    LOOP = "loop"


@dataclass(frozen=True, slots=True)
class Local:
    """Deliver to a subscriber queue on this node."""


@dataclass(frozen=True, slots=True)
class Forward:
    """Forward to the first of these nodes that accepts (one, unless untargeted at the hub)."""

    nodes: tuple[NodeSpec, ...]


@dataclass(frozen=True, slots=True)
class Reject:
    """Refuse the envelope: no routing could ever deliver it."""

    reason: RejectReason
    detail: str


Route = Local | Forward | Reject


class RoutingTable:
    """The routing decisions of one node, from the manifest alone (pure logic)."""

    def __init__(self, manifest: Manifest, node_id: str) -> None:
        me = manifest.node(node_id)
        if me is None:
            raise ConfigError(
                "MESH_NODE_ID", f"node {node_id!r} is not in the manifest {manifest.source}"
            )
        self.manifest = manifest
        self.me = me
        self._hub = manifest.hub

    def route(self, domain: str, target_node: str = "", hops: int = 0) -> Route:
        """Decide what to do with an envelope of `domain` (optionally for `target_node`)."""
        serving = self.manifest.serving(domain)
        if not serving:
            return Reject(RejectReason.UNKNOWN_DOMAIN, f"no node serves domain {domain!r}")
        if target_node:
            target = self.manifest.node(target_node)
            if target is None:
                return Reject(RejectReason.UNKNOWN_NODE, f"no node {target_node!r}")
            if domain not in target.domains:
                return Reject(
                    RejectReason.NOT_SERVED,
                    f"node {target_node!r} does not serve domain {domain!r}",
                )
            if target.id == self.me.id:
                return Local()
            return self._forward((target,), hops, f"to node {target_node!r}")
        if domain in self.me.domains:
            return Local()
        return self._forward(serving, hops, f"for domain {domain!r}")

    def _forward(self, destinations: tuple[NodeSpec, ...], hops: int, what: str) -> Route:
        if self.me.is_hub:
            if hops >= MAX_HOPS:
                return Reject(RejectReason.LOOP, f"forwarded {hops} times {what}")
            return Forward(destinations)
        if hops > 0:
            # The hub sent it here, yet this node would forward it: the manifests disagree.
            return Reject(RejectReason.LOOP, f"forwarded here by the hub {what}, not served")
        return Forward((self._hub,))


class TenantDomains:
    """The supervisor's tenant -> domain pins (MESH_TENANT_DOMAIN_MAP), with a default."""

    def __init__(self, pins: Mapping[str, str], default: str) -> None:
        self.pins = dict(pins)
        self.default = default

    def domain_of(self, tenant: str) -> str:
        """The domain a tenant's tasks are published to."""
        return self.pins.get(tenant, self.default)

    @property
    def domains(self) -> frozenset[str]:
        """Every domain a task may be published to."""
        return frozenset({self.default, *self.pins.values()})

    def check(self, manifest: Manifest) -> None:
        """Fail, naming the setting and pair, if a domain is served by no node."""
        if not manifest.serving(self.default):
            raise ConfigError(
                "MESH_PUBLISH_DOMAIN",
                f"domain {self.default!r} is served by no node of {manifest.source}",
            )
        for tenant, domain in self.pins.items():
            if not manifest.serving(domain):
                raise ConfigError(
                    "MESH_TENANT_DOMAIN_MAP",
                    f"pair '{tenant}={domain}': domain {domain!r} is served by no node of "
                    f"{manifest.source}",
                )
