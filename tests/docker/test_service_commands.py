"""Each service's container command is a valid invocation, run with that service's env.

The command comes from the resolved compose model (entry point + command), container
paths are mapped to the repo files the Dockerfile copies there, and the program is the
one this virtual environment installs, which is what the image installs too.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.docker.stack import (
    DAGSTER_SERVICES,
    STREAMPLANE_SERVICES,
    VENV_BIN,
    clean_env,
    image_paths,
    require,
    service_env,
)

HEALTHCHECK = "/usr/local/lib/streamplane/healthcheck.py"

# Loads what the process loads first: the runtime's settings; for a streamplane command,
# its options parsed and converted from the arguments and the environment (without
# running it); for Dagster, the face's settings and the Definitions that workspace.yaml
# names. A bad value fails here.
SETTINGS_CHECK = """
import json
import sys

import click

from streamplane.config import load_settings

argv = json.loads(sys.argv[1])
load_settings()
if argv[0] == "streamplane":
    from streamplane.cli import cli

    command = cli.commands[argv[1]]
    command.make_context(argv[1], argv[2:], parent=click.Context(cli, info_name="streamplane"))
else:
    load_settings().face
    import streamplane.definitions
"""


def _map_paths(values: list[str]) -> list[str]:
    paths = image_paths()
    return [str(paths[v]) if v in paths else v for v in values]


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, env=clean_env(**env), cwd=cwd, timeout=300
    )


def _container_env(model: dict[str, Any], service: str) -> dict[str, str]:
    env = service_env(model, service)
    paths = image_paths()
    return {k: str(paths[v]) if v in paths else v for k, v in env.items()}


def _commands() -> list[str]:
    result = subprocess.run(
        [str(VENV_BIN / "streamplane"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split("Commands:", 1)[-1].split()


@pytest.mark.parametrize("service", STREAMPLANE_SERVICES)
def test_command_is_valid(model: dict[str, Any], service: str, tmp_path: Path) -> None:
    spec = model["services"][service]
    argv = _map_paths([*(spec.get("entrypoint") or ["streamplane"]), *spec["command"]])
    program = VENV_BIN / argv[0]
    assert program.exists(), f"{service}: {argv[0]} is not installed by the package"
    if argv[0] == "streamplane":
        require(
            argv[1] in _commands(),
            f"`streamplane {argv[1]}` is not there yet (the MeshData issue adds mesh-node)",
        )
    env = _container_env(model, service)
    # cwd: an empty folder, so no docker/streaming/.env of this checkout is read.
    result = _run([str(program), *argv[1:], "--help"], env, tmp_path)
    assert result.returncode == 0, f"{service}: {argv}\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize("service", STREAMPLANE_SERVICES)
def test_settings_load_in_the_service_environment(
    model: dict[str, Any], service: str, tmp_path: Path
) -> None:
    spec = model["services"][service]
    argv = _map_paths([*(spec.get("entrypoint") or ["streamplane"]), *spec["command"]])
    assert (argv[0] == "streamplane") == (service not in DAGSTER_SERVICES)
    if argv[0] == "streamplane":
        require(argv[1] in _commands(), f"`streamplane {argv[1]}` is not there yet")
    env = _container_env(model, service)
    env.pop("DAGSTER_HOME", None)  # /opt/dagster/home exists only in the image
    result = _run([sys.executable, "-c", SETTINGS_CHECK, json.dumps(argv)], env, tmp_path)
    assert result.returncode == 0, f"{service}:\n{result.stderr}"


def test_health_checks_are_valid_commands(model: dict[str, Any], tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("healthcheck", image_paths()[HEALTHCHECK])
    assert spec is not None
    assert spec.loader is not None
    healthcheck = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(healthcheck)
    checked = 0
    for name, service in model["services"].items():
        test = (service.get("healthcheck") or {}).get("test")
        if not test or test[0] != "CMD":
            continue  # CMD-SHELL ones run the broker's and postgres' own tools
        if test[1:3] == ["python", HEALTHCHECK]:
            healthcheck.parse_args(test[3:])  # exits 2 on a bad probe or argument
        else:
            argv = [str(VENV_BIN / test[1]), *test[2:], "--help"]
            result = _run(argv, _container_env(model, name), tmp_path)
            assert result.returncode == 0, f"{name}: {test}\n{result.stderr}"
        checked += 1
    assert checked >= 5
