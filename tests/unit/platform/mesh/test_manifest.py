"""The mesh manifest: the packaged default, and errors that name the offending field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streamplane.exceptions import ConfigError
from streamplane.platform.mesh.exceptions import ManifestError
from streamplane.platform.mesh.manifest import (
    grpc_target,
    load_manifest,
    parse_manifest,
    parse_manifest_text,
)


def _node(id_: str, role: str, port: int, domains: list[str] | None = None) -> dict[str, Any]:
    return {"id": id_, "role": role, "endpoint": f"127.0.0.1:{port}", "domains": domains or []}


def _doc(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {"nodes": list(nodes)}


GOOD = _doc(_node("hub", "hub", 9001), _node("worker", "worker", 9002, ["default"]))


def test_default_manifest_is_hub_worker_trainer() -> None:
    manifest = load_manifest(None)
    assert [(n.id, n.role, n.port) for n in manifest.nodes] == [
        ("hub", "hub", 9001),
        ("worker", "worker", 9002),
        ("trainer", "trainer", 9003),
    ]
    assert manifest.hub.id == "hub"
    assert [n.id for n in manifest.serving("default")] == ["worker"]
    assert [n.id for n in manifest.serving("trainer")] == ["trainer"]
    assert manifest.domains == {"default", "trainer"}


def test_more_nodes_just_extend_the_document() -> None:
    doc = _doc(
        *GOOD["nodes"],
        _node("worker-b", "worker", 9004, ["default", "latency"]),
        _node("inference", "inference", 9005, ["serving"]),
    )
    manifest = parse_manifest(doc)
    assert [n.id for n in manifest.serving("default")] == ["worker", "worker-b"]
    assert manifest.node("inference") is not None
    assert manifest.node("nope") is None


def test_endpoints_may_carry_a_scheme() -> None:
    doc = _doc(
        _node("hub", "hub", 9001),
        {"id": "w", "role": "worker", "endpoint": "http://mesh-worker:50052", "domains": []},
    )
    node = parse_manifest(doc).node("w")
    assert node is not None
    assert (node.target, node.port) == ("mesh-worker:50052", 50052)
    assert grpc_target("grpc://x:1") == "x:1"


def test_load_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "services.json"
    path.write_text(json.dumps(GOOD))
    manifest = load_manifest(path)
    assert manifest.source == str(path)
    assert len(manifest.nodes) == 2


@pytest.mark.parametrize(
    ("doc", "field", "words"),
    [
        ([], "(document)", "expected a JSON object"),
        ({"nodes": [], "extra": 1}, "extra", "unknown field"),
        ({}, "nodes", "missing"),
        ({"nodes": []}, "nodes", "non-empty list"),
        ({"nodes": [_node("hub", "hub", 9001)], "version": 2}, "version", "unsupported"),
        (_doc(_node("hub", "hub", 9001), "worker"), "nodes[1]", "expected an object"),
        (_doc({"role": "hub", "endpoint": "h:1"}), "nodes[0].id", "missing"),
        (_doc({"id": 7, "role": "hub", "endpoint": "h:1"}), "nodes[0].id", "expected a string"),
        (_doc({"id": "a b", "role": "hub", "endpoint": "h:1"}), "nodes[0].id", "a name"),
        (_doc({"id": "hub", "endpoint": "h:1"}), "nodes[0].role", "missing"),
        (
            _doc(_node("hub", "hub", 9001), {"id": "w", "role": "worker", "endpoint": "w"}),
            "nodes[1].endpoint",
            "expected host:port",
        ),
        (
            _doc(_node("hub", "hub", 9001), {"id": "w", "role": "w", "endpoint": "w:70000"}),
            "nodes[1].endpoint",
            "port out of range",
        ),
        (
            _doc(_node("hub", "hub", 9001), {**_node("w", "w", 9002), "domains": "default"}),
            "nodes[1].domains",
            "expected a list",
        ),
        (
            _doc(_node("hub", "hub", 9001), _node("w", "w", 9002, ["ok", "not ok"])),
            "nodes[1].domains[1]",
            "expected a domain name",
        ),
        (
            _doc(_node("hub", "hub", 9001), _node("w", "w", 9002, ["a", "a"])),
            "nodes[1].domains[1]",
            "duplicate domain",
        ),
        (
            _doc(_node("hub", "hub", 9001), {**_node("w", "w", 9002), "weight": 3}),
            "nodes[1].weight",
            "unknown field",
        ),
        (
            _doc(_node("hub", "hub", 9001), _node("w", "w", 9002), _node("w", "w", 9003)),
            "nodes[2].id",
            "duplicate id 'w' (also nodes[1])",
        ),
        (
            _doc(_node("hub", "hub", 9001), _node("w", "w", 9001)),
            "nodes[1].endpoint",
            "also nodes[0]",
        ),
        (_doc(_node("w", "worker", 9002)), "nodes", "no node has role 'hub'"),
        (
            _doc(_node("hub", "hub", 9001), _node("hub2", "hub", 9002)),
            "nodes[1].role",
            "a second hub",
        ),
    ],
)
def test_errors_name_the_offending_field(doc: Any, field: str, words: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(doc, "services.json")
    err = caught.value
    assert err.field == field
    assert words in str(err)
    assert f"services.json: {field}: " in str(err)
    # A manifest error is a configuration error of MESH_SERVICES_FILE (exit status 2).
    assert isinstance(err, ConfigError)
    assert err.variable == "MESH_SERVICES_FILE"


def test_not_json_names_the_position() -> None:
    with pytest.raises(ManifestError, match=r"\(document\): not JSON: .* line 1 column 2"):
        parse_manifest_text("{oops", "m.json")


def test_a_missing_file_is_a_manifest_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"\(file\): cannot read"):
        load_manifest(tmp_path / "absent.json")
