"""Fixtures of the RL tests: a real single-node Slurm, RL settings in a temporary folder.

The ``conftest.py`` of tests/unit/rl, tests/integration/rl and tests/e2e/rl import them
from here (a ``pytest_plugins`` entry is allowed only in the root conftest).

Where Slurm is installed and the tests run as root, ``scripts/slurm-setup.sh``
(idempotent) makes sure its daemons run. Without Slurm the tests that need it are skipped
with the install hint, or fail under ``STREAMPLANE_REQUIRE_ALL=1`` (CI, whose
``.ci/run`` installs it first, must never pass by skipping).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, instance_for_test

from streamplane.config import RLSettings
from tests.support.procs import REPO_ROOT

# starlette 1.x asks for its httpx fork on import of its TestClient; the stock httpx it
# falls back to works for our in-process API tests. Imported here, once, under a filter
# narrowed to that message, so filterwarnings=error keeps catching everything else.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette.testclient`")
    import fastapi.testclient  # noqa: F401

SETUP_SCRIPT = REPO_ROOT / "scripts" / "slurm-setup.sh"
SLURM_HINT = (
    "Slurm is not available: install Debian's slurm-wlm and munge and start them with "
    "`sudo scripts/slurm-setup.sh`"
)


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers of these tests."""
    config.addinivalue_line("markers", "slurm: needs a running Slurm cluster")


def _require(message: str) -> None:
    if os.environ.get("STREAMPLANE_REQUIRE_ALL") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """A running single-node Slurm cluster; returns the node's name."""
    if shutil.which("sbatch") is None or shutil.which("scontrol") is None:
        _require(SLURM_HINT)
    if os.geteuid() == 0:
        # Installed: make sure the daemons run (idempotent; nothing is installed here).
        done = subprocess.run(
            ["bash", str(SETUP_SCRIPT)], capture_output=True, text=True, timeout=900, check=False
        )
        if done.returncode != 0:
            _require(f"{SLURM_HINT}; the setup script failed:\n{done.stderr[-2000:]}")
    ping = subprocess.run(
        ["scontrol", "ping"], capture_output=True, text=True, timeout=30, check=False
    )
    if " is UP" not in ping.stdout:
        _require(f"{SLURM_HINT}; scontrol ping says: {ping.stdout.strip() or ping.stderr}")
    node = subprocess.run(
        ["sinfo", "-h", "-o", "%n"], capture_output=True, text=True, timeout=30, check=True
    )
    return node.stdout.split()[0]


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    """A throwaway Dagster instance, cleaned up at teardown."""
    with instance_for_test() as dagster_instance:
        yield dagster_instance


@pytest.fixture
def rl_dirs(tmp_path: Path) -> dict[str, Path]:
    """Fresh buffer, policy and training folders."""
    dirs = {
        "buffer": tmp_path / "buffer",
        "policies": tmp_path / "policies",
        "training": tmp_path / "training",
    }
    for path in dirs.values():
        path.mkdir()
    return dirs


@pytest.fixture
def training_settings(rl_dirs: dict[str, Path]) -> RLSettings:
    """RL settings over the fresh folders; nothing read from the environment's RL_* vars."""
    return RLSettings(
        rl_results_topic="rl-results-test",
        rl_buffer_dir=rl_dirs["buffer"],
        rl_policy_dir=rl_dirs["policies"],
        rl_training_dir=rl_dirs["training"],
        rl_buffer_shard_rows=100,
        rl_buffer_linger_s=0.2,
        training_api_token="test-token",
    )
