"""The mesh manifest: which nodes exist, where they listen and which domains they serve.

A JSON document (MESH_SERVICES_FILE; the packaged `default-services.json` when unset)::

    {"nodes": [
      {"id": "hub", "role": "hub", "endpoint": "127.0.0.1:9001", "domains": []},
      {"id": "worker", "role": "worker", "endpoint": "127.0.0.1:9002", "domains": ["default"]}
    ]}

Exactly one node has the role ``hub``; other roles are free names, so more nodes just
extend the document. The loader checks everything a node or the supervisor relies on
and names the offending field (``nodes[2].endpoint``) in its error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from streamplane.platform.mesh.exceptions import ManifestError

HUB_ROLE = "hub"
DEFAULT_MANIFEST = "default-services.json"
MANIFEST_VERSION = 1

# Ids, roles and domains travel in envelopes and metric labels: keep them plain.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$")
_HOST_PORT = re.compile(r"^(?P<host>[A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})$")
_SCHEMES = ("http://", "grpc://")
_NODE_FIELDS = {"id", "role", "endpoint", "domains"}
_TOP_FIELDS = {"version", "nodes"}


def grpc_target(endpoint: str) -> str:
    """`host:port` for a gRPC channel, from an endpoint that may carry http:// or grpc://."""
    for scheme in _SCHEMES:
        if endpoint.startswith(scheme):
            return endpoint[len(scheme) :].rstrip("/")
    return endpoint


def check_endpoint(endpoint: str) -> str | None:
    """None when `endpoint` is [scheme://]host:port with a usable port, else why not."""
    match = _HOST_PORT.match(grpc_target(endpoint))
    if not match:
        return f"expected host:port (optionally http:// or grpc://), got {endpoint!r}"
    if not 1 <= int(match.group("port")) <= 65535:
        return f"port out of range in {endpoint!r}"
    return None


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One node of the manifest."""

    id: str
    role: str
    endpoint: str
    domains: tuple[str, ...]

    @property
    def target(self) -> str:
        """The endpoint as a gRPC target (host:port)."""
        return grpc_target(self.endpoint)

    @property
    def port(self) -> int:
        """The endpoint's port: where the node listens unless told otherwise."""
        return int(self.target.rpartition(":")[2])

    @property
    def is_hub(self) -> bool:
        """Whether this node is the hub that forwards between the others."""
        return self.role == HUB_ROLE


@dataclass(frozen=True)
class Manifest:
    """A validated manifest; build it with `parse_manifest` or `load_manifest`."""

    nodes: tuple[NodeSpec, ...]
    source: str = "<manifest>"

    @cached_property
    def _by_id(self) -> dict[str, NodeSpec]:
        return {n.id: n for n in self.nodes}

    @property
    def hub(self) -> NodeSpec:
        """The hub node (the loader guarantees exactly one)."""
        return next(n for n in self.nodes if n.is_hub)

    def node(self, node_id: str) -> NodeSpec | None:
        """The node with this id, or None."""
        return self._by_id.get(node_id)

    def serving(self, domain: str) -> tuple[NodeSpec, ...]:
        """Nodes that serve `domain`, in manifest order."""
        return tuple(n for n in self.nodes if domain in n.domains)

    @cached_property
    def domains(self) -> frozenset[str]:
        """Every domain some node serves."""
        return frozenset(d for n in self.nodes for d in n.domains)


def load_manifest(path: Path | None) -> Manifest:
    """Read and validate the manifest at `path` (the packaged default when None)."""
    if path is None:
        text = resources.files(__package__).joinpath(DEFAULT_MANIFEST).read_text("utf-8")
        return parse_manifest_text(text, f"<packaged {DEFAULT_MANIFEST}>")
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ManifestError(str(path), "(file)", f"cannot read: {exc.strerror or exc}") from exc
    return parse_manifest_text(text, str(path))


def parse_manifest_text(text: str, source: str = "<manifest>") -> Manifest:
    """Parse and validate manifest JSON text."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(
            source, "(document)", f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    return parse_manifest(data, source)


def parse_manifest(data: Any, source: str = "<manifest>") -> Manifest:
    """Validate a decoded manifest document; ManifestError names the first bad field."""

    def fail(field: str, reason: str) -> ManifestError:
        return ManifestError(source, field, reason)

    if not isinstance(data, Mapping):
        raise fail("(document)", f"expected a JSON object, got {type(data).__name__}")
    for key in data:
        if key not in _TOP_FIELDS:
            raise fail(str(key), f"unknown field (expected {sorted(_TOP_FIELDS)})")
    version = data.get("version", MANIFEST_VERSION)
    if version != MANIFEST_VERSION or isinstance(version, bool):
        raise fail("version", f"unsupported version {version!r} (expected {MANIFEST_VERSION})")
    raw_nodes = data.get("nodes")
    if raw_nodes is None:
        raise fail("nodes", "missing")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise fail("nodes", "expected a non-empty list of nodes")
    nodes = [_parse_node(raw, f"nodes[{i}]", fail) for i, raw in enumerate(raw_nodes)]
    seen_ids: dict[str, int] = {}
    seen_endpoints: dict[str, int] = {}
    hubs: list[int] = []
    for i, node in enumerate(nodes):
        if node.id in seen_ids:
            raise fail(
                f"nodes[{i}].id", f"duplicate id {node.id!r} (also nodes[{seen_ids[node.id]}])"
            )
        seen_ids[node.id] = i
        if node.target in seen_endpoints:
            other = seen_endpoints[node.target]
            raise fail(f"nodes[{i}].endpoint", f"{node.endpoint!r} is also nodes[{other}]'s")
        seen_endpoints[node.target] = i
        if node.is_hub:
            if hubs:
                raise fail(f"nodes[{i}].role", f"a second hub (nodes[{hubs[0]}] is the hub)")
            hubs.append(i)
    if not hubs:
        raise fail("nodes", f"no node has role {HUB_ROLE!r}; a mesh needs exactly one hub")
    return Manifest(tuple(nodes), source)


def _parse_node(raw: Any, where: str, fail: Any) -> NodeSpec:
    if not isinstance(raw, Mapping):
        raise fail(where, f"expected an object, got {type(raw).__name__}")
    for key in raw:
        if key not in _NODE_FIELDS:
            raise fail(f"{where}.{key}", f"unknown field (expected {sorted(_NODE_FIELDS)})")
    for key in ("id", "role", "endpoint"):
        if key not in raw:
            raise fail(f"{where}.{key}", "missing")
        if not isinstance(raw[key], str):
            raise fail(f"{where}.{key}", f"expected a string, got {type(raw[key]).__name__}")
    for key in ("id", "role"):
        if not _NAME.match(raw[key]):
            raise fail(f"{where}.{key}", f"expected a name of [A-Za-z0-9_.-], got {raw[key]!r}")
    problem = check_endpoint(raw["endpoint"])
    if problem:
        raise fail(f"{where}.endpoint", problem)
    domains = raw.get("domains", [])
    if not isinstance(domains, list):
        raise fail(f"{where}.domains", f"expected a list, got {type(domains).__name__}")
    for j, domain in enumerate(domains):
        if not isinstance(domain, str) or not _NAME.match(domain):
            raise fail(f"{where}.domains[{j}]", f"expected a domain name, got {domain!r}")
        if domain in domains[:j]:
            raise fail(f"{where}.domains[{j}]", f"duplicate domain {domain!r}")
    return NodeSpec(raw["id"], raw["role"], raw["endpoint"], tuple(domains))
