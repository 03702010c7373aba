"""Training on the real single-node Slurm: the API, rl_policy, scancel, a dead controller."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize
from fastapi import FastAPI
from fastapi.testclient import TestClient

from streamplane.assets.rl import RLResource, rl_policy
from streamplane.config import RLSettings, Settings
from streamplane.rl.api import create_training_router
from streamplane.rl.checkpoints import ALL_SKILLS, CheckpointStore
from streamplane.rl.slurm.client import SlurmClient
from streamplane.rl.slurm.jobs import JobState
from streamplane.rl.slurm.runs import TrainingService
from streamplane.rl.slurm.schema import Hyperparameters, TrainingRequest
from tests.rl_support.fixtures import SETUP_SCRIPT
from tests.rl_support.helpers import random_buffer
from tests.support.deadline import wait_until

pytestmark = pytest.mark.slurm

AUTH = {"Authorization": "Bearer test-token"}
CTLD_PID = Path("/run/slurm/slurmctld.pid")


def api(training: RLSettings) -> TestClient:
    app = FastAPI()
    app.include_router(create_training_router(Settings(), training=training))
    return TestClient(app)


def rl_resource(training: RLSettings) -> RLResource:
    return RLResource(
        buffer_dir=str(training.buffer_dir),
        policy_dir=str(training.policy_dir),
        training_dir=str(training.training_dir),
        poll_interval_s=0.5,
        job_timeout_s=300,
        evaluation_episodes=3,
    )


def test_start_runs_the_trainer_on_slurm_to_completion(
    slurm_cluster: str, training_settings: RLSettings
) -> None:
    random_buffer(training_settings.buffer_dir, episodes=10)
    client = api(training_settings)
    body = {"hyperparameters": {"steps": 200, "eval_episodes": 2}, "resources": {"cpus": 1}}
    response = client.post("/training/rl/start", json=body, headers=AUTH)
    assert response.status_code == 202, response.text
    task = response.json()["task_id"]
    seen: list[str] = []

    def finished() -> bool:
        status = client.get(f"/training/rl/status/{task}", headers=AUTH).json()
        if not seen or seen[-1] != status["state"]:
            seen.append(status["state"])
        return JobState(status["state"]).finished

    wait_until(finished, 240, 0.2, message=lambda: f"states seen: {seen}")
    status = client.get(f"/training/rl/status/{task}", headers=AUTH).json()
    assert status["state"] == "COMPLETED", status["log_tail"]
    assert seen[-1] == "COMPLETED"
    assert set(seen) <= {"PENDING", "RUNNING", "COMPLETED"}
    assert status["metrics"]["steps"] == 200
    assert status["metrics"]["eval_mean_return"] > 0
    assert status["elapsed_s"] is not None
    assert status["started_at"] >= status["submitted_at"] - 1
    assert status["job_id"] == response.json()["job_id"]
    assert '"version": 1' in status["log_tail"]
    assert CheckpointStore(training_settings.policy_dir).latest(ALL_SKILLS) is not None


def test_scancel_gives_cancelled_and_fails_the_asset_clearly(
    slurm_cluster: str, training_settings: RLSettings, instance: DagsterInstance
) -> None:
    random_buffer(training_settings.buffer_dir, episodes=5)
    service = TrainingService(training_settings, SlurmClient())
    slurm = SlurmClient()
    cancelled: list[int] = []
    done = threading.Event()

    def cancel_when_running() -> None:
        def running_job() -> int | None:
            if done.is_set():
                return -1
            for path in (training_settings.training_dir / "tasks").glob("*/task.json"):
                record = service.load(path.parent.name)
                if record.job_id and slurm.job(record.job_id).state == JobState.RUNNING:
                    return record.job_id
            return None

        job_id = wait_until(running_job, 120, 0.2, message="no training job started running")
        if job_id < 0:
            return
        subprocess.run(["scancel", str(job_id)], check=True, timeout=30)
        cancelled.append(job_id)

    canceller = threading.Thread(target=cancel_when_running)
    canceller.start()
    result = materialize(
        [rl_policy],
        resources={"rl": rl_resource(training_settings)},
        instance=instance,
        # Long enough to be caught running: a million steps would take many minutes.
        run_config={"ops": {"rl_policy": {"config": {"steps": 1_000_000}}}},
        raise_on_error=False,
    )
    done.set()
    canceller.join(150)
    assert cancelled
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message if failure.step_failure_data.error else ""
    assert f"Slurm job {cancelled[0]}" in message
    assert "was cancelled" in message
    [task] = list((training_settings.training_dir / "tasks").iterdir())
    assert service.status(task.name).state == JobState.CANCELLED


def test_a_retried_run_reattaches_to_its_running_job(
    slurm_cluster: str, training_settings: RLSettings, instance: DagsterInstance
) -> None:
    random_buffer(training_settings.buffer_dir, episodes=5)
    service = TrainingService(training_settings, SlurmClient())
    root = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    # The first attempt of the run submitted this job, then its process died.
    first = service.submit(
        TrainingRequest(hyperparameters=Hyperparameters(steps=300, eval_episodes=2)),
        group=f"dagster-{root}",
    )
    result = materialize(
        [rl_policy],
        resources={"rl": rl_resource(training_settings)},
        instance=instance,
        tags={"dagster/root_run_id": root},
    )
    assert result.success
    [mat] = result.asset_materializations_for_node("rl_policy")
    assert mat.metadata["slurm_job_id"].value == first.job_id
    assert mat.metadata["task_id"].value == first.task_id
    assert mat.metadata["state"].value == "COMPLETED"
    assert mat.metadata["version"].value == 1
    assert len(list((training_settings.training_dir / "tasks").iterdir())) == 1


def test_stopped_slurmctld_gives_503_and_submits_nothing(
    slurm_cluster: str, training_settings: RLSettings
) -> None:
    if os.geteuid() != 0 or not CTLD_PID.exists():
        pytest.skip("stopping slurmctld needs root and the cluster scripts/slurm-setup.sh starts")
    pid = int(CTLD_PID.read_text())
    os.kill(pid, signal.SIGTERM)
    try:
        wait_until(lambda: not _alive(pid), 60, 0.2, message="slurmctld did not stop")
        response = api(training_settings).post("/training/rl/start", json={}, headers=AUTH)
        assert response.status_code == 503
        assert "slurmctld" in response.json()["detail"] or "contact" in response.json()["detail"]
        assert list((training_settings.training_dir / "tasks").iterdir()) == []
    finally:
        subprocess.run(["bash", str(SETUP_SCRIPT)], check=True, timeout=300, capture_output=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
