"""Mesh node processes for end-to-end tests: a manifest on free ports, start, kill, restart.

Nodes listen on fixed ports (the manifest names them), so a node killed with SIGKILL
comes back on the same address; each exposes /metrics on a port it picks itself.
"""

from __future__ import annotations

import json
import re
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.deadline import wait_until
from tests.support.procs import Proc, Processes, free_port

READY = re.compile(r"mesh node (\S+) ready grpc=(\d+) metrics=(\d+)")
# hub, worker and trainer as in the packaged manifest, with a second domain on the trainer
# node ("rl"): the domain a pinned tenant is sent to.
LAYOUT = {"hub": ("hub", []), "worker": ("worker", ["default"]), "trainer": ("trainer", ["rl"])}


@dataclass
class MeshNodeProc:
    node_id: str
    port: int
    proc: Proc | None = None
    metrics_port: int = 0

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        """A sample of this node's /metrics (0 when absent)."""
        return metric_in(self.metrics(), name, **labels)


def metric_in(text: str, name: str, **labels: str) -> float:
    """The value of sample `name{labels}` in Prometheus text, 0 when absent."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        metric, _, rest = sample.partition("{")
        if metric != name:
            continue
        got = ",".join(sorted(p for p in rest.rstrip("}").split(",") if p))
        if got == want:
            return float(value)
    return 0.0


@dataclass
class MeshNodes:
    """The hub, worker and trainer nodes of one test, and their manifest file."""

    procs: Processes
    manifest: Path
    nodes: dict[str, MeshNodeProc] = field(default_factory=dict)

    @classmethod
    def create(cls, procs: Processes, folder: Path) -> MeshNodes:
        nodes = {node_id: MeshNodeProc(node_id, free_port()) for node_id in LAYOUT}
        doc = {
            "nodes": [
                {"id": n, "role": role, "endpoint": nodes[n].endpoint, "domains": domains}
                for n, (role, domains) in LAYOUT.items()
            ]
        }
        folder.mkdir(parents=True, exist_ok=True)
        manifest = folder / "services.json"
        manifest.write_text(json.dumps(doc, indent=2))
        return cls(procs, manifest, nodes)

    def __getitem__(self, node_id: str) -> MeshNodeProc:
        return self.nodes[node_id]

    def start(self, node_id: str, timeout: float = 30) -> MeshNodeProc:
        node = self.nodes[node_id]
        proc = node.proc = self.procs.start(
            f"mesh-{node_id}",
            [
                "mesh-node",
                f"--node-id={node_id}",
                f"--listen=127.0.0.1:{node.port}",
                f"--services={self.manifest}",
                "--metrics-listen=127.0.0.1:0",
            ],
            {"LOG_LEVEL": "INFO"},
        )

        def ready() -> re.Match[str] | None:
            if not proc.alive():
                raise AssertionError(f"mesh node {node_id} exited\n{proc.tail()}")
            return READY.search(proc.stdout())

        match = wait_until(
            ready, timeout, interval=0.05, message=lambda: f"{node_id} not ready\n{proc.tail()}"
        )
        node.metrics_port = int(match.group(3))
        return node

    def start_all(self) -> None:
        for node_id in self.nodes:
            self.start(node_id)

    def kill(self, node_id: str) -> None:
        node = self.nodes[node_id]
        assert node.proc is not None
        node.proc.kill()

    def supervisor_env(self, tenant_map: str = "") -> dict[str, str]:
        env = {
            "MESH_PUBLISH_ENDPOINT": self["hub"].endpoint,
            "MESH_SOURCE_NODE": "supervisor",
            "MESH_PUBLISH_DOMAIN": "default",
            "MESH_SERVICES_FILE": str(self.manifest),
        }
        if tenant_map:
            env["MESH_TENANT_DOMAIN_MAP"] = tenant_map
        return env

    def worker_env(self, node_id: str, domain: str) -> dict[str, str]:
        return {
            "MESH_ENDPOINT": f"http://{self[node_id].endpoint}",
            "MESH_NODE_ID": node_id,
            "MESH_DOMAIN": domain,
        }
