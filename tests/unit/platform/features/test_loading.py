"""Engine loading at start: a GPU engine that cannot run here fails with one clear line."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamplane.exceptions import ConfigError
from streamplane.platform.features import (
    EngineUnavailable,
    load_engine,
    load_window_engine,
)
from streamplane.platform.features.polars_engine import PolarsEngine
from streamplane.platform.features.window_polars import PolarsWindowEngine

from .fake_gpu import BROKEN_CUDF, NO_DEVICE, fake_gpu_installed, write_fake_gpu

REPO_ROOT = Path(__file__).resolve().parents[4]
CUDF_INSTALLED = importlib.util.find_spec("cudf") is not None
needs_no_cudf = pytest.mark.skipif(CUDF_INSTALLED, reason="cudf is installed here")


def assert_one_clear_line(error: EngineUnavailable, setting: str, missing: str) -> None:
    message = str(error)
    assert "\n" not in message
    assert message.startswith(f"{setting}: the cudf engine cannot run here: {missing}")
    assert "`gpu` extra (CUDA 12)" in message
    assert "`gpu-cu13` extra (CUDA 13)" in message
    assert message.endswith(f"or set {setting}=polars")
    assert isinstance(error, ConfigError)
    assert error.variable == setting


def test_load_engine_polars_is_the_polars_engine() -> None:
    assert isinstance(load_engine("polars"), PolarsEngine)
    assert isinstance(load_window_engine("polars"), PolarsWindowEngine)


def test_load_engine_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown feature engine 'pandas'"):
        load_engine("pandas")
    with pytest.raises(ValueError, match="unknown feature engine 'pandas'"):
        load_window_engine("pandas")


@needs_no_cudf
def test_without_cudf_the_error_says_it_is_not_installed() -> None:
    with pytest.raises(EngineUnavailable) as info:
        load_engine("cudf")
    assert_one_clear_line(info.value, "WORKER_ENGINE", "cuDF is not installed;")


@needs_no_cudf
def test_the_window_engine_names_the_setting_that_chose_it() -> None:
    with pytest.raises(EngineUnavailable) as info:
        load_window_engine("cudf", setting="BACKFILL_ENGINE")
    assert_one_clear_line(info.value, "BACKFILL_ENGINE", "cuDF is not installed;")


def test_cudf_that_fails_to_import_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with (
        fake_gpu_installed(monkeypatch, tmp_path, BROKEN_CUDF),
        pytest.raises(EngineUnavailable) as info,
    ):
        load_engine("cudf")
    assert_one_clear_line(info.value, "WORKER_ENGINE", "cuDF is installed but failed to load")
    assert "AttributeError: module 'numpy' has no attribute 'row_stack'" in str(info.value)
    assert isinstance(info.value.__cause__, AttributeError)


@pytest.mark.parametrize("loader", [load_engine, load_window_engine])
def test_cudf_without_a_usable_gpu_fails_at_load(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, loader: object
) -> None:
    with fake_gpu_installed(monkeypatch, tmp_path), pytest.raises(EngineUnavailable) as info:
        loader("cudf")  # type: ignore[operator]
    assert_one_clear_line(info.value, "WORKER_ENGINE", "cuDF is installed but found no usable GPU")
    assert NO_DEVICE in str(info.value)  # the driver's words, on the same line


def test_a_long_foreign_message_is_cut(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    source = f"raise RuntimeError({'x' * 5000!r})\n"
    with (
        fake_gpu_installed(monkeypatch, tmp_path, source),
        pytest.raises(EngineUnavailable) as info,
    ):
        load_engine("cudf")
    assert len(str(info.value)) < 600
    assert "xxx..." in str(info.value)


def worker_env(**extra: str) -> dict[str, str]:
    # A supervisor nobody runs: if the engine check were missing, the worker would sit
    # reconnecting instead of failing at once.
    return {
        "KAFKA_BROKERS": "127.0.0.1:1",
        "SUPERVISOR_GRPC_ADDR": "127.0.0.1:1",
        "WORKER_ENGINE": "cudf",
        **extra,
    }


def run_worker(tmp_path: Path, env: dict[str, str]) -> tuple[int | None, str, str]:
    """`streamplane worker` in a clean environment: no settings variable leaks in."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KAFKA_", "WORKER_", "SUPERVISOR_", "MESH_", "RL_"))
    }
    inherited["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "src"), str(REPO_ROOT)])
    done = subprocess.run(
        [sys.executable, "-m", "streamplane.cli", "worker"],
        env={**inherited, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout, done.stderr


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "WORKER_ENGINE" in line]


@needs_no_cudf
def test_worker_without_cudf_exits_2_with_one_line(tmp_path: Path) -> None:
    returncode, stdout, stderr = run_worker(tmp_path, worker_env())
    assert returncode == 2, stderr
    assert "Traceback" not in stderr, stderr
    assert not stdout.strip(), stdout
    [line] = error_lines(stderr)
    assert line.startswith(
        "streamplane: configuration error: WORKER_ENGINE: the cudf engine cannot run here: "
        "cuDF is not installed; install streamplane with the `gpu` extra (CUDA 12) or the "
        "`gpu-cu13` extra (CUDA 13)"
    ), line
    assert line.endswith("or set WORKER_ENGINE=polars"), line


def test_worker_with_cudf_but_no_gpu_exits_2_with_one_line(tmp_path: Path) -> None:
    fake = write_fake_gpu(tmp_path / "site")
    pythonpath = os.pathsep.join([str(fake), str(REPO_ROOT / "src"), str(REPO_ROOT)])
    returncode, _, stderr = run_worker(tmp_path, worker_env(PYTHONPATH=pythonpath))
    assert returncode == 2, stderr
    assert "Traceback" not in stderr, stderr
    [line] = error_lines(stderr)
    assert "cuDF is installed but found no usable GPU (RuntimeError: " + NO_DEVICE in line, line
    assert "second line of a long driver message" in line, line
