"""What the container-stack tests share: paths, the env template, compose and the image.

No container engine is needed: compose files are resolved with `docker-compose config`
(Debian's docker-compose package validates without an engine), and the image's paths
are read from the Dockerfile's COPY lines.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
STREAMING = REPO / "docker" / "streaming"
TEMPLATE = STREAMING / "env.template"
COMPOSE = STREAMING / "compose.yaml"
EXTERNAL_KAFKA = STREAMING / "compose.external-kafka.yaml"
LOCAL_IMAGES = STREAMING / "compose.local-images.yaml"
KAFKA_DOCKERFILE = REPO / "docker" / "kafka" / "Dockerfile"
POSTGRES_DOCKERFILE = REPO / "docker" / "postgres" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
DOCKERFILE = STREAMING / "Dockerfile"
MANIFEST = STREAMING / "mesh-services.json"
DAGSTER_YAML = STREAMING / "dagster.yaml"
MAKEFILE = STREAMING / "streaming.mk"
ENV_SCRIPT = REPO / "scripts" / "streaming-env.sh"
VENV_BIN = Path(sys.executable).parent

# The seed's configuration table (DESIGN.md section 5): name -> default (None: unset).
SEED_DEFAULTS: dict[str, str | None] = {
    "KAFKA_BROKERS": "broker:9092",
    "INPUT_TOPIC": "raw.events.demo",
    "OUTPUT_TOPIC": "features.events.demo",
    "SUPERVISOR_LISTEN": ":7000",
    "SUPERVISOR_GRPC_ADDR": "supervisor:7000",
    "MAX_INFLIGHT": "4",
    "MESH_ENDPOINT": None,
    "MESH_NODE_ID": None,
    "MESH_DOMAIN": "default",
    "MESH_WORKER_ENDPOINT": "http://mesh-worker:50052",
    "MESH_SERVICES_FILE": None,
    "MESH_PUBLISH_ENDPOINT": None,
    "MESH_SOURCE_NODE": None,
    "MESH_PUBLISH_DOMAIN": None,
    "MESH_TENANT_DOMAIN_MAP": None,
    "RL_RESULTS_TOPIC": None,
    "RL_BUFFER_DIR": None,
}

STREAMPLANE_SERVICES = (
    "topics",
    "supervisor",
    "worker",
    "mesh-hub",
    "mesh-worker",
    "mesh-trainer",
    "dagster-webserver",
    "dagster-daemon",
    "producer",
)
DAGSTER_SERVICES = ("dagster-webserver", "dagster-daemon")
ALL_SERVICES = (*STREAMPLANE_SERVICES, "broker", "postgres")

_ACTIVE = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")
_COMMENTED = re.compile(r"^#\s*([A-Z][A-Z0-9_]*)=(.*)$")


def require(ok: bool, message: str) -> None:
    """Skip when a tool is missing, or fail under STREAMPLANE_REQUIRE_ALL=1 (CI)."""
    if ok:
        return
    if os.environ.get("STREAMPLANE_REQUIRE_ALL") == "1":
        pytest.fail(f"{message} (STREAMPLANE_REQUIRE_ALL=1)")
    pytest.skip(message)


def parse_env_file(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(active NAME=value lines, commented '# NAME=value' lines) of an env file."""
    active: dict[str, str] = {}
    commented: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if match := _ACTIVE.match(line):
            active[match.group(1)] = match.group(2)
        elif match := _COMMENTED.match(line):
            commented[match.group(1)] = match.group(2)
    return active, commented


def clean_env(**extra: str) -> dict[str, str]:
    """A minimal environment: none of the developer's streamplane variables leak in."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env.update(extra)
    return env


def compose_command() -> list[str] | None:
    """`docker compose` (v2) when it works, else `docker-compose` (v1), else None."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, timeout=60
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def compose_config(
    command: list[str],
    env_file: Path,
    files: tuple[Path, ...] = (COMPOSE,),
    **exported: str,
) -> dict[str, Any]:
    """The resolved compose model for this env file and these exported variables."""
    args = [*command, "--env-file", str(env_file)]
    for path in files:
        args += ["-f", str(path)]
    result = subprocess.run(
        [*args, "config"],
        capture_output=True,
        text=True,
        env=clean_env(**exported),
        cwd=env_file.parent,
        timeout=120,
    )
    assert result.returncode == 0, f"compose config failed:\n{result.stderr}"
    model = yaml.safe_load(result.stdout)
    assert isinstance(model, dict)
    return model


def service_env(model: dict[str, Any], service: str) -> dict[str, str]:
    """A service's resolved environment; variables left unset (null) are dropped."""
    raw = model["services"][service].get("environment") or {}
    if isinstance(raw, list):  # some compose versions print KEY=VALUE lists
        raw = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
    return {str(k): str(v) for k, v in raw.items() if v is not None}


def image_paths() -> dict[str, Path]:
    """Paths the final image stage copies from the repo: container path -> repo path."""
    stages = DOCKERFILE.read_text().split("\nFROM ")
    mapping: dict[str, Path] = {}
    for line in stages[-1].splitlines():
        parts = line.split()
        if parts[:1] == ["COPY"] and not any(p.startswith("--from") for p in parts):
            sources = [p for p in parts[1:-1] if not p.startswith("--")]
            for source in sources:
                mapping[parts[-1]] = REPO / source
    return mapping
