"""Bad mesh settings stop the process at once: status 2, the variable and culprit named.

No broker: configuration is checked before anything connects to Kafka.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.mesh.mesh_procs import MeshNodes
from tests.support.procs import processes

BASE = {
    "KAFKA_BROKERS": "127.0.0.1:1",
    "SUPERVISOR_GRPC_ADDR": "127.0.0.1:1",
    "SUPERVISOR_LISTEN": "127.0.0.1:0",
    "SUPERVISOR_HTTP_LISTEN": "127.0.0.1:0",
}
PUBLISH = {
    "MESH_PUBLISH_ENDPOINT": "127.0.0.1:1",
    "MESH_SOURCE_NODE": "supervisor",
    "MESH_PUBLISH_DOMAIN": "default",
}


def _run(tmp_path: Path, command: list[str], env: dict[str, str]) -> str:
    with processes(tmp_path) as group:
        proc = group.run(command[0], command, {**BASE, **env}, timeout=30)
    assert proc.returncode == 2, proc.tail()
    stderr = proc.stderr()
    assert "Traceback" not in stderr, stderr
    return stderr


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (
            ["--tenant-domain-map=tenant-1=trainer,oops"],
            PUBLISH,
            ["MESH_TENANT_DOMAIN_MAP", "'oops'"],
        ),
        ([], {**PUBLISH, "MESH_TENANT_DOMAIN_MAP": "gold=nowhere"}, ["'gold=nowhere'"]),
        ([], {"MESH_PUBLISH_ENDPOINT": "127.0.0.1:1"}, ["MESH_SOURCE_NODE"]),
    ],
)
def test_bad_supervisor_mesh_settings(
    tmp_path: Path, args: list[str], env: dict[str, str], words: list[str]
) -> None:
    stderr = _run(tmp_path, ["supervisor", *args], env)
    for word in words:
        assert word in stderr, stderr


def test_a_bad_manifest_names_the_field(tmp_path: Path) -> None:
    manifest = tmp_path / "services.json"
    manifest.write_text(
        json.dumps(
            {
                "nodes": [
                    {"id": "hub", "role": "hub", "endpoint": "127.0.0.1:9001"},
                    {"id": "worker", "role": "worker", "endpoint": "nowhere"},
                ]
            }
        )
    )
    stderr = _run(tmp_path, ["mesh-node", "--node-id=hub", f"--services={manifest}"], {})
    assert "MESH_SERVICES_FILE" in stderr
    assert "nodes[1].endpoint" in stderr
    stderr = _run(tmp_path, ["mesh-node", "--node-id=ghost"], {})
    assert "MESH_NODE_ID" in stderr


def test_a_worker_pointed_at_a_node_that_does_not_serve_its_domain(tmp_path: Path) -> None:
    with processes(tmp_path / "nodes") as group:
        mesh = MeshNodes.create(group, tmp_path / "mesh")
        mesh.start("worker")
        env = {"MESH_ENDPOINT": mesh["worker"].endpoint, "MESH_DOMAIN": "rl"}
        stderr = _run(tmp_path, ["worker"], env)
        assert "MESH_DOMAIN" in stderr
        assert "does not serve domain 'rl'" in stderr
