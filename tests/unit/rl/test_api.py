"""The training API over a fake Slurm: validation, auth, the exact sbatch argv, 503."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from streamplane.config import RLSettings, Settings
from streamplane.rl import metrics as tm
from streamplane.rl.api import create_training_router
from streamplane.rl.slurm.client import SlurmClient
from streamplane.rl.slurm.runs import RESULT_FILE, TrainingService
from streamplane.rl.slurm.schema import TrainingRequest
from tests.rl_support.fakes import FakeSlurm

AUTH = {"Authorization": "Bearer test-token"}
SHELL = ["; id", "$(id)", "`id`", "a|b", "x\ny", "a && b", "../../etc", "' \"", "a b"]


@pytest.fixture
def fake() -> FakeSlurm:
    return FakeSlurm()


@pytest.fixture
def service(training_settings: RLSettings, fake: FakeSlurm) -> TrainingService:
    return TrainingService(training_settings, SlurmClient(fake), clock=lambda: 1_700_000_000.0)


@pytest.fixture
def client(training_settings: RLSettings, service: TrainingService) -> TestClient:
    app = FastAPI()
    app.include_router(
        create_training_router(Settings(), training=training_settings, service=service)
    )
    return TestClient(app)


def start(client: TestClient, body: Any, headers: dict[str, str] | None = AUTH) -> Any:
    return client.post("/training/rl/start", json=body, headers=headers)


def test_start_submits_exactly_this_argv(
    client: TestClient, fake: FakeSlurm, training_settings: RLSettings
) -> None:
    before = tm.TRAINING_RUNS.labels("SUBMITTED")._value.get()
    response = start(
        client,
        {
            "algorithm": "dqn",
            "skill": "balance",
            "hyperparameters": {"steps": 500, "learning_rate": 0.0005},
            "resources": {"cpus": 2, "memory_mb": 1024, "time_limit_minutes": 10},
        },
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["job_id"] == 100
    assert body["state"] == "PENDING"
    task = body["task_id"]
    task_dir = training_settings.training_dir / "tasks" / task
    [argv] = fake.sbatch_calls()
    assert argv == [
        "sbatch", "--parsable", f"--job-name=sp-train-{task}", f"--chdir={task_dir}",
        f"--output={task_dir / 'train.log'}", "--nodes=1", "--ntasks=1", "--cpus-per-task=2",
        "--mem=1024M", "--time=10", "--export=PATH,LANG,JAX_PLATFORMS=cpu,OMP_NUM_THREADS=2",
        str(task_dir / "job.sh"),
        "--buffer", str(training_settings.buffer_dir), "--out", str(training_settings.policy_dir),
        "--algo", "dqn", "--env", "CartPole-v1", "--steps", "500", "--batch-size", "256",
        "--learning-rate", "0.0005", "--gamma", "0.98", "--target-tau", "0.005",
        "--hidden", "128", "--layers", "2", "--eval-episodes", "10", "--seed", "0",
        "--result", str(task_dir / RESULT_FILE), "--skill", "balance",
    ]  # fmt: skip
    script = (task_dir / "job.sh").read_text()
    assert f'exec {sys.executable} -m streamplane.rl.learner.trainer "$@"' in script
    assert "balance" not in script  # the request never reaches the script
    assert tm.TRAINING_RUNS.labels("SUBMITTED")._value.get() == before + 1


def test_status_follows_the_job_and_reports_metrics(
    client: TestClient, fake: FakeSlurm, training_settings: RLSettings
) -> None:
    task = start(client, {}).json()["task_id"]
    assert client.get(f"/training/rl/status/{task}", headers=AUTH).json()["state"] == "PENDING"
    job = fake.jobs[100]
    job.state, job.start = "RUNNING", "2023-11-14T22:13:30"
    task_dir = training_settings.training_dir / "tasks" / task
    (task_dir / "train.log").write_text("step 1\nstep 2\n")
    running = client.get(f"/training/rl/status/{task}", headers=AUTH).json()
    assert running["state"] == "RUNNING"
    assert running["log_tail"].endswith("step 2\n")
    assert running["metrics"] is None
    job.state, job.end = "COMPLETED", "2023-11-14T22:14:30"
    (task_dir / RESULT_FILE).write_text(
        json.dumps({"loss": 0.1, "eval_mean_return": 150.0, "steps": 500, "wall_time_s": 9.5,
                    "line": "all", "version": 3, "checkpoint": "/p/all/v000003"})
    )  # fmt: skip
    before = tm.TRAINING_RUNS.labels("COMPLETED")._value.get()
    done = client.get(f"/training/rl/status/{task}", headers=AUTH).json()
    assert done["state"] == "COMPLETED"
    assert done["metrics"]["eval_mean_return"] == 150.0
    assert done["checkpoint"] == {"line": "all", "version": 3, "checkpoint": "/p/all/v000003"}
    assert done["elapsed_s"] == 60.0
    # Counted once, however often the status is read.
    client.get(f"/training/rl/status/{task}", headers=AUTH)
    assert tm.TRAINING_RUNS.labels("COMPLETED")._value.get() == before + 1


@pytest.mark.parametrize(
    "body",
    [
        {"algorithm": "ppo"},
        {"unknown": 1},
        {"hyperparameters": {"steps": -1}},
        {"hyperparameters": {"learning_rate": 0}},
        {"hyperparameters": {"gamma": 1.5}},
        {"hyperparameters": {"momentum": 0.9}},
        {"resources": {"cpus": 0}},
        {"resources": {"cpus": -4}},
        {"resources": {"cpus": 100000}},
        {"resources": {"gpus": -1}},
        {"resources": {"memory_mb": 10**12}},
        {"resources": {"time_limit_minutes": 10**9}},
        {"resources": {"cpus": "2; id"}},
        {"env": "os:system-v0"},
        [],
        "dqn",
    ],
)
def test_bad_requests_are_422_and_submit_nothing(
    client: TestClient, fake: FakeSlurm, body: Any
) -> None:
    assert start(client, body).status_code == 422
    assert fake.calls == []


@pytest.mark.parametrize("text", SHELL)
@pytest.mark.parametrize("field", ["algorithm", "skill", "env"])
def test_shell_text_in_every_string_field_is_refused(
    client: TestClient, fake: FakeSlurm, field: str, text: str
) -> None:
    assert start(client, {field: text}).status_code == 422
    assert fake.calls == []


def test_invalid_json_is_422(client: TestClient, fake: FakeSlurm) -> None:
    response = client.post(
        "/training/rl/start",
        content=b'{"algorithm": ',
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert fake.calls == []


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic dGVzdA=="},
        {"Authorization": "Bearer"},
    ],
)
def test_missing_or_wrong_token_is_401(
    client: TestClient, fake: FakeSlurm, headers: dict[str, str] | None
) -> None:
    response = start(client, {}, headers=headers)
    assert response.status_code in (401, 403)
    assert fake.calls == []


def test_no_configured_token_disables_start(
    training_settings: RLSettings, service: TrainingService
) -> None:
    settings = training_settings.model_copy(update={"training_api_token": None})
    app = FastAPI()
    app.include_router(create_training_router(Settings(), training=settings, service=service))
    response = TestClient(app).post("/training/rl/start", json={}, headers=AUTH)
    assert response.status_code == 503
    assert "TRAINING_API_TOKEN" in response.json()["detail"]


def test_slurm_down_is_503_and_leaves_nothing(
    client: TestClient, fake: FakeSlurm, training_settings: RLSettings
) -> None:
    fake.down = True
    response = start(client, {})
    assert response.status_code == 503
    assert "contact slurm controller" in response.json()["detail"]
    assert fake.sbatch_calls() == []
    assert list((training_settings.training_dir / "tasks").iterdir()) == []


def test_refused_job_is_422_and_leaves_nothing(
    client: TestClient, fake: FakeSlurm, training_settings: RLSettings
) -> None:
    fake.refuse = "Requested node configuration is not available"
    response = start(client, {"resources": {"cpus": 200}})
    assert response.status_code == 422
    assert "node configuration" in response.json()["detail"]
    assert list((training_settings.training_dir / "tasks").iterdir()) == []


def test_unknown_task_is_404(client: TestClient) -> None:
    assert client.get("/training/rl/status/nope", headers=AUTH).status_code == 404
    assert client.get("/training/rl/status/..%2F..%2Fetc", headers=AUTH).status_code == 404


def test_group_submission_reattaches_until_the_job_fails(
    service: TrainingService, fake: FakeSlurm
) -> None:
    request = TrainingRequest()
    first = service.submit(request, group="dagster-run1")
    again = service.submit(request, group="dagster-run1")
    assert again.task_id == first.task_id
    assert len(fake.sbatch_calls()) == 1
    fake.jobs[100].state = "CANCELLED"
    third = service.submit(request, group="dagster-run1")
    assert third.task_id != first.task_id
    assert len(fake.sbatch_calls()) == 2


def test_a_lost_job_id_is_recovered_by_name(
    service: TrainingService, fake: FakeSlurm, training_settings: RLSettings
) -> None:
    record = service.submit(TrainingRequest())
    task_file = training_settings.training_dir / "tasks" / record.task_id / "task.json"
    data = json.loads(task_file.read_text())
    task_file.write_text(json.dumps({**data, "job_id": None}))  # crashed before saving it
    assert service.status(record.task_id).job_id == 100


def test_refresh_active_sets_the_gauge(service: TrainingService, fake: FakeSlurm) -> None:
    service.submit(TrainingRequest())
    service.submit(TrainingRequest())
    assert service.refresh_active() == 2
    assert tm.TRAINING_ACTIVE._value.get() == 2
    fake.jobs[100].state = "FAILED"
    assert service.refresh_active() == 1


def test_monitor_ticks_refresh_the_gauge(service: TrainingService, fake: FakeSlurm) -> None:
    from streamplane.rl.slurm.monitor import TrainingMonitor

    service.submit(TrainingRequest())
    monitor = TrainingMonitor(service, interval_s=3600)
    assert monitor.tick() == 1
    fake.down = True
    assert monitor.tick() == 1  # unreachable Slurm: the task stays counted as active
    monitor.start()
    monitor.stop()


def test_without_a_buffer_dir_the_api_says_so(fake: FakeSlurm) -> None:
    training = RLSettings(training_api_token="test-token")
    if training.rl_buffer_dir is not None:
        pytest.skip("RL_BUFFER_DIR is set in this environment")
    app = FastAPI()
    service = TrainingService(training, SlurmClient(fake))
    app.include_router(create_training_router(Settings(), training=training, service=service))
    client = TestClient(app)
    response = client.post("/training/rl/start", json={}, headers=AUTH)
    assert response.status_code == 503
    assert "RL_BUFFER_DIR" in response.json()["detail"]
    assert client.get("/training/rl/status/abc", headers=AUTH).status_code == 503
