"""The long-running jobs' ops: a real worker process under ``execute_in_process``.

No Kafka is needed: a worker with no supervisor to reach idles, and its idle exit ends
the run with success; a worker that cannot start fails the run with its exit status.
Termination (drain, run canceled) is exercised against the real daemon in ``test_e2e``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from streamplane.jobs import HEARTBEAT_TAG, _stop, _watch, gpu_worker_job, worker_job
from streamplane.platform.kafka.exceptions import KafkaUnavailable
from streamplane.platform.kafka.group_offsets import _parse
from streamplane.resources import KafkaResource, StreamplaneResource
from tests.support.procs import free_port


@pytest.fixture
def nowhere() -> StreamplaneResource:
    """Settings pointing at closed ports: no Kafka, no supervisor."""
    return StreamplaneResource(
        kafka=KafkaResource(bootstrap_servers=f"127.0.0.1:{free_port()}"),
        supervisor_grpc_addr=f"127.0.0.1:{free_port()}",
        drain_timeout_s=5,
    )


def worker_config(idle: float) -> dict[str, object]:
    return {
        "ops": {
            "run_worker": {
                "config": {"max_inflight": 2, "engine": "polars", "idle_exit_seconds": idle}
            }
        }
    }


def test_worker_run_succeeds_on_idle_exit_and_beats(
    instance: DagsterInstance, nowhere: StreamplaneResource
) -> None:
    result = worker_job.execute_in_process(
        run_config=worker_config(2), resources={"streamplane": nowhere}, instance=instance
    )
    assert result.success
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    assert run.status == DagsterRunStatus.SUCCESS
    assert float(run.tags[HEARTBEAT_TAG]) > time.time() - 120
    messages = [e.message or "" for e in instance.all_logs(result.run_id)]
    assert any("streamplane worker exited cleanly" in m for m in messages)


def test_worker_that_cannot_start_fails_the_run(
    instance: DagsterInstance, nowhere: StreamplaneResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERING", "sideways")  # the runtime rejects it: exit status 2
    result = worker_job.execute_in_process(
        run_config=worker_config(2),
        resources={"streamplane": nowhere},
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "exited with status 2" in str(failure.step_failure_data.error)


def test_watch_beats_while_the_process_runs() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.2)"])
    beats: list[float] = []
    ticks = iter(range(0, 10_000, 5))  # every clock read moves 5 s: a beat per loop
    status = _watch(proc, lambda: beats.append(1.0), clock=lambda: float(next(ticks)))
    assert status == 0
    assert len(beats) >= 2


def test_stop_kills_a_process_that_will_not_drain() -> None:
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    assert stubborn.stdout is not None
    with stubborn.stdout:
        assert stubborn.stdout.readline().strip() == b"ready"
        assert _stop(stubborn, 1) == -signal.SIGKILL


def test_stop_returns_the_drained_status() -> None:
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert _stop(polite, 10) == -signal.SIGTERM


def test_a_crashed_offset_reader_is_a_clear_transient_error() -> None:
    crashed = subprocess.CompletedProcess(args=[], returncode=-11, stdout="", stderr="")
    with pytest.raises(KafkaUnavailable, match=r"admin client crashed \(SIGSEGV\)"):
        _parse(crashed)


def test_gpu_worker_job_defaults_to_cudf_under_partial_config() -> None:
    from dagster._config import process_config

    schema = gpu_worker_job.run_config_schema.config_type
    partial = {"ops": {"run_worker": {"config": {"idle_exit_seconds": 5}}}}
    result = process_config(schema, partial)
    assert result.success, result.errors
    assert result.value["ops"]["run_worker"]["config"]["engine"] == "cudf"  # type: ignore[index]
    cpu = process_config(worker_job.run_config_schema.config_type, partial)
    assert cpu.value["ops"]["run_worker"]["config"]["engine"] == "polars"  # type: ignore[index]
