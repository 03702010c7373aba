"""`streamplane bench` end to end on the session broker: one JSON line, nothing lost.

Timings are never asserted (DESIGN.md section 7): only that the figures exist, are
consistent with each other, and that no record went missing.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from typing import Any

import psutil
import pytest

from tests.support.deadline import wait_until

pytestmark = pytest.mark.kafka

# Small enough for a test, big enough that the two-worker run still has records left
# once its second worker is ready (the clock starts then).
COUNT = 50_000
PARTITIONS = 3
REQUIRED_KEYS = {
    "count",
    "partitions",
    "cpu_count",
    "versions",
    "passthrough_msgs_per_s",
    "pipeline_msgs_per_s",
    "pipeline2_msgs_per_s",
    "ratio_pipeline_to_passthrough",
    "latency_p50_ms",
    "latency_p99_ms",
    "latency_stage_p50_ms",
    "supervisor_peak_rss_mb",
    "worker_peak_rss_mb",
    "lost",
    "duplicates",
    "eos_pipeline_msgs_per_s",
    "ratio_eos_to_alo",
    "eos_latency_p99_ms",
    "eos_visibility_p50_ms",
    "eos_visibility_p99_ms",
}


def _command(bootstrap: str) -> list[str]:
    return [
        sys.executable, "-m", "streamplane.cli", "bench",
        "--count", str(COUNT), "--partitions", str(PARTITIONS), "--kafka-brokers", bootstrap,
        "--guarantee", "exactly_once",
    ]  # fmt: skip


def _env() -> dict[str, str]:
    """Our environment without BENCH_* variables a developer's shell may carry."""
    return {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}


@pytest.fixture(scope="module")
def report(kafka_bootstrap: str) -> dict[str, Any]:
    """Run the bench once for the whole module and parse its stdout."""
    result = subprocess.run(
        _command(kafka_bootstrap),
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
        env=_env(),
    )
    assert result.returncode == 0, f"bench failed:\n{result.stderr[-6000:]}"
    lines = result.stdout.splitlines()
    assert len(lines) == 1, f"stdout must hold exactly the JSON line, got {lines!r}"
    parsed: dict[str, Any] = json.loads(lines[0])
    return parsed


def test_report_has_every_figure(report: dict[str, Any]) -> None:
    assert not REQUIRED_KEYS - report.keys(), "figures missing from the JSON line"
    assert report["count"] == COUNT
    assert report["partitions"] == PARTITIONS
    assert report["cpu_count"] >= 1
    assert report["versions"]["streamplane"]


def test_pipeline_loses_nothing(report: dict[str, Any]) -> None:
    assert report["lost"] == 0
    # No process failed, so nothing was redelivered and nothing should repeat.
    assert report["duplicates"] == 0
    assert report["unexpected_records"] == 0
    assert report["unclean_exits"] == 0


def test_figures_are_consistent(report: dict[str, Any]) -> None:
    assert report["passthrough_records"] == COUNT
    for name in ("passthrough", "pipeline", "pipeline2"):
        records, rate = report[f"{name}_records"], report[f"{name}_msgs_per_s"]
        assert records <= COUNT, json.dumps(report)
        # Only a run whose workers finished everything before the last one was ready
        # has nothing to time (the bench then says so); the others have a rate.
        assert (rate > 0) if records > 0 else (rate is None), json.dumps(report)
    assert report["pipeline_records"] > 0
    ratio = report["pipeline_msgs_per_s"] / report["passthrough_msgs_per_s"]
    rounded = report["ratio_pipeline_to_passthrough"]
    assert math.isclose(rounded, ratio, rel_tol=1e-3, abs_tol=1e-4), json.dumps(report)
    assert 0 <= report["latency_p50_ms"] <= report["latency_p99_ms"]
    assert report["latency_p99_ms"] <= report["latency_max_ms"]
    assert 0 < report["latency_records"] <= COUNT
    assert report["latency_warmup_records"] > 0
    assert report["latency_drain_s"] >= 0
    # Every stage of both roles saw the measured records (the warm-up's are left out).
    for key in ("latency_stage_p50_ms", "eos_latency_stage_p50_ms"):
        stage_ages = report[key]
        assert list(stage_ages) == ["consumed", "dispatched", "received", "written", "acked"]
        assert all(age is not None and age >= 0 for age in stage_ages.values()), stage_ages
    sizes = report["records_per_task"]
    assert set(sizes) == {"pipeline1", "pipeline2", "latency", "eos1", "eos_latency"}
    assert all(0 < size <= COUNT for size in sizes.values()), sizes
    assert report["supervisor_peak_rss_mb"] > 0
    assert report["worker_peak_rss_mb"] > 0


def test_sigterm_stops_every_process(kafka_bootstrap: str) -> None:
    with subprocess.Popen(
        _command(kafka_bootstrap), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env()
    ) as bench:
        try:
            children = wait_until(
                lambda: _descendants_once_workers_run(bench),
                timeout=180,
                message="the bench never started a supervisor and a worker",
            )
            assert children is not None  # wait_until returns only what is truthy
            bench.send_signal(signal.SIGTERM)
            _, stderr = bench.communicate(timeout=120)
        finally:
            if bench.poll() is None:
                bench.kill()
        assert bench.returncode == 130, stderr.decode()[-3000:]
        assert b"interrupted" in stderr
        for child, cmdline in children:
            assert not _alive(child), f"{child.pid} ({cmdline}) survived the bench"


def _descendants_once_workers_run(
    bench: subprocess.Popen[bytes],
) -> list[tuple[psutil.Process, str]] | None:
    """The bench's descendants and their command lines, once a worker runs among them."""
    if bench.poll() is not None:
        _, stderr = bench.communicate()
        raise AssertionError(f"the bench exited with {bench.returncode}:\n{stderr.decode()}")
    try:
        children = psutil.Process(bench.pid).children(recursive=True)
        found = [(child, " ".join(child.cmdline())) for child in children]
    except psutil.Error:
        return None
    commands = [line.split()[-1:] for _, line in found]
    if ["supervisor"] not in commands or ["worker"] not in commands:
        return None
    return found


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_exactly_once_figures_are_consistent(report: dict[str, Any]) -> None:
    """The transactional runs are verified under read_committed like the others (lost and
    duplicates above count them), and every output became visible to the tail."""
    assert report["guarantee"] == "exactly_once"
    assert report["eos_pipeline_records"] > 0
    ratio = report["eos_pipeline_msgs_per_s"] / report["pipeline_msgs_per_s"]
    assert math.isclose(report["ratio_eos_to_alo"], ratio, rel_tol=1e-3, abs_tol=1e-4)
    assert 0 <= report["eos_visibility_p50_ms"] <= report["eos_visibility_p99_ms"]
    assert report["eos_visibility_p99_ms"] <= report["eos_visibility_max_ms"]
    # The tail sees the warm-up's records too.
    seen = report["eos_latency_records"] + report["eos_latency_warmup_records"]
    assert report["eos_visibility_records"] == seen > report["eos_latency_records"] > 0
