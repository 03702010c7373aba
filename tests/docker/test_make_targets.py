"""The seed's make workflow: streaming-env once, edits kept, exported overrides, no engine."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.docker.stack import (
    COMPOSE,
    ENV_SCRIPT,
    EXTERNAL_KAFKA,
    LOCAL_IMAGES,
    MAKEFILE,
    REPO,
    TEMPLATE,
    clean_env,
    compose_config,
    require,
    service_env,
)

ENGINE_TARGETS = ("streaming-build", "streaming-up", "streaming-logs", "streaming-down")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """The stack's files in the repo's layout, so make never touches the real .env."""
    streaming = tmp_path / "docker" / "streaming"
    streaming.mkdir(parents=True)
    for path in (MAKEFILE, TEMPLATE, COMPOSE, EXTERNAL_KAFKA, LOCAL_IMAGES):
        shutil.copy2(path, streaming / path.name)
    (tmp_path / "scripts").mkdir()
    shutil.copy2(ENV_SCRIPT, tmp_path / "scripts" / ENV_SCRIPT.name)
    return tmp_path


def make(tree: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    require_make()
    return subprocess.run(
        ["make", "--no-print-directory", "-f", "docker/streaming/streaming.mk", *args],
        cwd=tree,
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=120,
    )


def require_make() -> None:
    require(shutil.which("make") is not None, "make is missing: apt-get install make")


def test_streaming_env_creates_the_file_once(tree: Path) -> None:
    env_file = tree / "docker/streaming/.env"
    first = make(tree, "streaming-env")
    assert first.returncode == 0, first.stderr
    assert env_file.read_text() == TEMPLATE.read_text()
    assert "wrote docker/streaming/.env" in first.stdout
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600  # it may hold passwords
    second = make(tree, "streaming-env")
    assert second.returncode == 0, second.stderr
    assert second.stdout == ""


def test_streaming_env_keeps_edits(tree: Path) -> None:
    env_file = tree / "docker/streaming/.env"
    assert make(tree, "streaming-env").returncode == 0
    edited = env_file.read_text().replace("MAX_INFLIGHT=4", "MAX_INFLIGHT=12")
    env_file.write_text(edited)
    before = env_file.stat().st_mtime_ns
    result = make(tree, "streaming-env")
    assert result.returncode == 0, result.stderr
    assert env_file.read_text() == edited
    assert env_file.stat().st_mtime_ns == before


def test_streaming_env_reports_what_a_newer_template_adds(tree: Path) -> None:
    env_file = tree / "docker/streaming/.env"
    lines = TEMPLATE.read_text().splitlines(keepends=True)
    older = "".join(ln for ln in lines if not ln.startswith("ORDERING="))
    env_file.write_text(older)
    result = make(tree, "streaming-env")
    assert result.returncode == 0, result.stderr
    assert "lacks ORDERING" in result.stdout
    assert env_file.read_text() == older  # reported, never appended


def test_exported_variables_are_honoured(tree: Path, compose: list[str]) -> None:
    result = make(tree, "streaming-env", KAFKA_BROKERS="kafka.example:9092", MESH_DOMAIN="eu")
    assert result.returncode == 0, result.stderr
    assert "KAFKA_BROKERS" in result.stdout
    assert "MESH_DOMAIN" in result.stdout
    env_file = tree / "docker/streaming/.env"
    assert env_file.read_text() == TEMPLATE.read_text()  # the file stays the template
    model = compose_config(compose, env_file, KAFKA_BROKERS="kafka.example:9092", MESH_DOMAIN="eu")
    env = service_env(model, "supervisor")
    assert env["KAFKA_BROKERS"] == "kafka.example:9092"
    assert env["MESH_DOMAIN"] == "eu"


def test_make_command_line_variables_are_honoured_too(tree: Path) -> None:
    result = make(tree, "streaming-env", "INPUT_TOPIC=clicks")
    assert result.returncode == 0, result.stderr
    assert "INPUT_TOPIC" in result.stdout


@pytest.mark.parametrize("target", ENGINE_TARGETS)
def test_without_an_engine_one_line_says_so(tree: Path, target: str) -> None:
    result = make(tree, target, "DOCKER=/nonexistent/docker")
    assert result.returncode != 0
    errors = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1, result.stderr
    assert "no container engine" in errors[0]
    assert (tree / "docker/streaming/.env").exists(), "streaming-env runs first"


def test_without_a_daemon_the_real_docker_cli_stops_too(tree: Path) -> None:
    """The real docker CLI pointed at a socket where no daemon listens: one line, exit 2."""
    docker = shutil.which("docker")
    require(docker is not None, "no docker CLI: apt-get install docker.io")
    assert docker is not None
    nowhere = f"unix://{tree}/no-daemon.sock"
    probe = subprocess.run(
        [docker, "info"], capture_output=True, timeout=60, env=clean_env(DOCKER_HOST=nowhere)
    )
    assert probe.returncode != 0
    result = make(tree, "streaming-up", DOCKER_HOST=nowhere)
    errors = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode != 0
    assert len(errors) == 1, result.stderr
    assert "no container engine" in errors[0]


def test_local_images_select_the_override_and_the_legacy_builder(tree: Path) -> None:
    """STREAMING_IMAGES=local adds compose.local-images.yaml; no BuildKit is asked for."""
    result = make(tree, "-n", "streaming-build", "STREAMING_IMAGES=local", "DOCKER=true")
    assert result.returncode == 0, result.stderr
    build = [ln for ln in result.stdout.splitlines() if " build " in ln]
    assert build, result.stdout
    assert "compose.local-images.yaml" in build[-1]
    assert "DOCKER_BUILDKIT=0" in build[-1]
    assert "STREAMPLANE_PYTHON_IMAGE=local/debian:bookworm" in build[-1]
    assert build[-1].rstrip().endswith("supervisor broker postgres")
    assert "docker-base-image.sh" in result.stdout
    assert "streaming-wheelhouse.sh" in result.stdout
    plain = make(tree, "-n", "streaming-build", "DOCKER=true")
    assert plain.returncode == 0, plain.stderr
    assert "compose.local-images.yaml" not in plain.stdout
    assert "docker-base-image.sh" not in plain.stdout


def test_the_makefile_and_streaming_mk_fit_together() -> None:
    """With the Makefile's include (or both -f), make parses them without warnings."""
    require_make()
    makefile = (REPO / "Makefile").read_text()
    included = "include docker/streaming/streaming.mk" in makefile
    args = [] if included else ["-f", "Makefile", "-f", "docker/streaming/streaming.mk"]
    result = subprocess.run(
        ["make", "-n", *args, "streaming-env", "streaming-proto"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "MAKEFLAGS": ""},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr.lower(), result.stderr
    assert "streaming-env.sh docker/streaming/env.template docker/streaming/.env" in result.stdout
