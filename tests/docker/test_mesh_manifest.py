"""mesh-services.json: the default multi-node topology, read by the project's own loader."""

from __future__ import annotations

import importlib.util

from tests.docker.stack import MANIFEST, SEED_DEFAULTS, require


def _loader_present() -> bool:
    return importlib.util.find_spec("streamplane.platform.mesh.manifest") is not None


def test_the_project_loader_reads_the_three_nodes() -> None:
    require(
        _loader_present(),
        "streamplane.platform.mesh.manifest is not there yet (the MeshData issue adds it)",
    )
    from streamplane.platform.mesh.manifest import load_manifest

    manifest = load_manifest(MANIFEST)
    nodes = {node.id: node for node in manifest.nodes}
    assert set(nodes) == {"hub", "worker", "trainer"}
    assert manifest.hub.id == "hub"
    assert {n.id: n.port for n in manifest.nodes} == {"hub": 9001, "worker": 9002, "trainer": 9003}
    assert {n.id: n.role for n in manifest.nodes} == {
        "hub": "hub",
        "worker": "worker",
        "trainer": "trainer",
    }
    # Workers subscribe in MESH_DOMAIN (default "default"): some node must serve it.
    assert manifest.serving(str(SEED_DEFAULTS["MESH_DOMAIN"]))


def test_same_topology_as_the_packaged_default() -> None:
    """Only the hosts differ: compose service names instead of 127.0.0.1."""
    require(_loader_present(), "streamplane.platform.mesh.manifest is not there yet")
    from streamplane.platform.mesh.manifest import load_manifest

    ours = load_manifest(MANIFEST)
    packaged = load_manifest(None)
    assert [(n.id, n.role, n.port, n.domains) for n in ours.nodes] == [
        (n.id, n.role, n.port, n.domains) for n in packaged.nodes
    ]
    assert all(not n.target.startswith("127.") for n in ours.nodes)
