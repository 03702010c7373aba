"""Fixtures of the container-stack tests: the compose CLI and a fresh copy of the template."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.docker.stack import TEMPLATE, compose_command, compose_config, require


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "stack: brings the container stack up for real (Docker daemon; make test runs it)",
    )


@pytest.fixture(scope="session")
def compose() -> list[str]:
    """The compose CLI (v2 plugin or v1 docker-compose); no engine needed for `config`."""
    command = compose_command()
    require(
        command is not None,
        "no Docker Compose CLI: install Debian's docker-compose package "
        "(apt-get install docker-compose) or the docker compose plugin",
    )
    assert command is not None
    return command


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    """A .env written from env.template, as `make streaming-env` writes it."""
    path = tmp_path / ".env"
    shutil.copyfile(TEMPLATE, path)
    return path


@pytest.fixture(scope="session")
def model(compose: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The stack resolved with env.template's values, as `make streaming-up` sees it."""
    env_file = tmp_path_factory.mktemp("stack") / ".env"
    shutil.copyfile(TEMPLATE, env_file)
    return compose_config(compose, env_file)
