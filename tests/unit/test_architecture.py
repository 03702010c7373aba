"""The architecture holds: import-linter's contracts pass, catch a violation, and the
graph in docs/architecture.md is the one the code has."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(src: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_contracts_hold(tmp_path: Path) -> None:
    result = _lint_imports(REPO / "src", tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("platform/headers.py", "import dagster", "The plane knows neither Dagster"),
        ("platform/worker/routing.py", "import streamplane.rl.envs.route", "The plane knows"),
        ("platform/supervisor/source.py", "import confluent_kafka", "Only the Kafka layer"),
        ("platform/supervisor/ledger.py", "import streamplane.platform.supervisor.app", "cycles"),
    ],
)
def test_a_violation_breaks_its_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    src = tmp_path / "src"
    shutil.copytree(
        REPO / "src" / "streamplane",
        src / "streamplane",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    target = src / "streamplane" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    result = _lint_imports(src, tmp_path)
    assert result.returncode != 0
    broken = [ln for ln in result.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(contract in ln for ln in broken), result.stdout[-3000:]


def test_the_documented_graph_is_current() -> None:
    graph = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "import_graph.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    doc = (REPO / "docs" / "architecture.md").read_text()
    assert f"```mermaid\n{graph}```" in doc, "run `make import-graph` and paste it in the doc"
