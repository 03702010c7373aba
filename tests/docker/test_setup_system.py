"""scripts/setup-system.sh, the system side of `make test`: what it says when things lack."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.docker.stack import REPO

SCRIPT = REPO / "scripts" / "setup-system.sh"


@pytest.fixture
def bare_path(tmp_path: Path) -> str:
    """A PATH with a shell and the basic tools only: no java, mvn, chromium, slurm, docker."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "python3", "cat", "timeout", "grep", "id", "dirname", "seq", "sleep"):
        found = shutil.which(tool)
        if found is not None:
            (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"HOME": os.environ.get("HOME", "/root"), **env},
    )


def test_check_names_every_missing_package_in_one_line(bare_path: str) -> None:
    result = _run("check", PATH=bare_path)
    assert result.returncode == 1, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    for package in ("openjdk-17-jre-headless", "maven", "chromium", "slurm-wlm", "munge"):
        assert package in lines[0]
    assert "docker.io" in lines[0]
    assert "docker-compose" in lines[0]
    assert "apt-get install" in lines[0]


def test_skip_setup_does_nothing(bare_path: str) -> None:
    result = _run(PATH=bare_path, STREAMPLANE_SKIP_SETUP="1")
    assert result.returncode == 0
    assert result.stderr == ""


def test_where_everything_is_there_it_is_quiet() -> None:
    """On a machine `make test` has set up (the test run itself), a check finds nothing."""
    missing = _run("check", PATH=os.environ.get("PATH", ""))
    if os.environ.get("STREAMPLANE_REQUIRE_ALL") != "1" and missing.returncode != 0:
        pytest.skip(f"this machine is not set up: {missing.stderr.strip()}")
    assert missing.returncode == 0, missing.stderr
    assert missing.stderr == ""
