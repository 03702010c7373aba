"""scripts/gpu/run-on-device.sh as far as a CPU goes: its dry run, and staging's guard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[4]

SCRIPT = REPO_ROOT / "scripts" / "gpu" / "run-on-device.sh"


def run(mode: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON_DRY": sys.executable, **env}
    return subprocess.run(
        ["bash", str(SCRIPT), mode], capture_output=True, text=True, timeout=300, env=full_env
    )


def test_dry_run_runs_the_parity_cases_and_prints_the_bench_line_last(tmp_path: Path) -> None:
    done = run("dry-run", tmp_path, DRY_SIZES="100")
    assert done.returncode == 0, done.stdout + done.stderr
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert isinstance(line["streaming"]["100"]["polars"], int)
    assert isinstance(line["window"]["100"]["polars"], int)
    log = (tmp_path / "out" / "parity.log").read_text()
    assert " passed" in log
    assert "failed" not in log
    assert json.loads((tmp_path / "out" / "bench.json").read_text()) == line


def test_stage_without_a_carried_part_says_so(tmp_path: Path) -> None:
    if list((REPO_ROOT / ".gpu").glob("p[0-9][0-9]")):
        return  # parts are here: staging would copy them, which is not this test's case
    done = run("stage", tmp_path, PARTS_DIR=str(tmp_path / "parts"))
    assert done.returncode == 2
    assert "no .gpu/pNN part was carried" in done.stderr
