"""schemathesis against the supervisor's HTTP API and the RL training API, in process.

The app is the one the supervisor serves (`supervisor.api.create_app` with the training
router included, as `Supervisor._http_server` builds it), over a real Dispatcher with a
worker and queued tasks and a real `Supervisor.status`, and a TrainingService over a
fake Slurm; no Kafka, no network: schemathesis calls it through ASGI. Every operation of
its OpenAPI gets generated requests, valid and invalid: no answer may be a 5xx, every
answer must match the schema, and invalid data must be refused with a 4xx. The training
routes are called with the token (to reach the body checks) and without it (401).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import settings
from schemathesis.checks import not_a_server_error, positive_data_acceptance

from streamplane.config import RLSettings, Settings
from streamplane.platform.supervisor.api import create_app
from streamplane.platform.supervisor.app import Supervisor
from streamplane.platform.supervisor.dispatcher import Dispatcher
from streamplane.platform.supervisor.scheduler import Scheduler
from streamplane.rl.api import create_training_router
from streamplane.rl.slurm.client import SlurmClient
from streamplane.rl.slurm.runs import TrainingService
from tests.rl_support.fakes import FakeSlurm
from tests.unit.platform.supervisor.factories import FakeDeadLetters, RecordingTransport, make_task

FUZZ = settings.get_profile("fuzz")
TOKEN = "fuzz-token-of-enough-length"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TP = ("in", 0)


def _dispatcher() -> Dispatcher:
    """A dispatcher with a worker holding a task and more queued, so the views have rows."""
    dispatcher = Dispatcher(
        scheduler=Scheduler(quantum=8),
        dead_letters=FakeDeadLetters(),
        max_attempts=3,
        lease_timeout_s=60.0,
        retry_backoff_s=0.1,
        clock=lambda: 1000.0,
        id_prefix="fuzz",
    )
    dispatcher.assign(TP, None)
    tracker = dispatcher.ledger.tracker(TP)
    assert tracker is not None
    for start in range(0, 9, 3):
        offsets = list(range(start, start + 3))
        tracker.register(offsets)
        dispatcher.submit(make_task(TP, offsets, tracker, tenant=f"tenant-{start}"))
    dispatcher.connect("session-1", "worker-1", 2, RecordingTransport())
    dispatcher.credit("session-1", 1)
    dispatcher.dispatch()
    return dispatcher


def build_app(rl_dirs: dict[str, Path], slurm: FakeSlurm | None = None) -> FastAPI:
    """The supervisor's HTTP app with the training router, as a supervisor serves it."""
    settings = Settings()
    supervisor = Supervisor(settings)
    supervisor.dispatcher = _dispatcher()
    supervisor.source = supervisor._build_source(meshed=False)
    app = create_app(supervisor.dispatcher, supervisor.readiness, supervisor.status, docs=True)
    fields: dict[str, Any] = {
        "rl_results_topic": "rl-results-fuzz",
        "rl_buffer_dir": rl_dirs["buffer"],
        "rl_policy_dir": rl_dirs["policies"],
        "rl_training_dir": rl_dirs["training"],
        "training_api_token": TOKEN,
    }
    training = RLSettings(**fields)
    fake = slurm if slurm is not None else FakeSlurm()
    service = TrainingService(training, SlurmClient(fake), clock=lambda: 1_700_000_000.0)
    app.include_router(create_training_router(settings, training=training, service=service))
    return app


def _rl_dirs_in(root: Path) -> dict[str, Path]:
    dirs = {name: root / name for name in ("buffer", "policies", "training")}
    for path in dirs.values():
        path.mkdir()
    return dirs


# The schema is built at import (schemathesis's lazy fixture loader does not work with
# this pytest), so its folders are made here and live as long as the process.
_TMP = tempfile.TemporaryDirectory(prefix="streamplane-fuzz-api-")
with warnings.catch_warnings():
    # starlette's TestClient (schemathesis's ASGI transport) asks for its httpx fork.
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette.testclient`")
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", build_app(_rl_dirs_in(Path(_TMP.name)))
    )


@schema.parametrize()
@FUZZ
def test_no_5xx_and_bad_data_is_refused_with_the_token(case: Any) -> None:
    if case.path == "/readyz":
        # Not ready answers 503 by design (probes read it); documented, schema-checked.
        response = case.call_and_validate(headers=AUTH, excluded_checks=[not_a_server_error])
        assert response.status_code in ((200, 503) if case.method == "GET" else (405,))
        return
    excluded = []
    if case.path == "/training/rl/start":
        # The schema cannot say which envs are on the allowlist nor which skills exist
        # (checked at submit, 422 with the reason), so a schema-valid body may be refused.
        excluded.append(positive_data_acceptance)
    case.call_and_validate(headers=AUTH, excluded_checks=excluded)


@schema.include(path_regex="^/training/").parametrize()
@FUZZ
def test_the_training_routes_refuse_a_request_without_the_token(case: Any) -> None:
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    case.headers = headers
    response = case.call()
    # A method the route does not have is answered 405 before any handler runs.
    expected = 401 if case.method == case.operation.method.upper() else 405
    assert response.status_code == expected, (response.status_code, response.text[:500])


@pytest.mark.parametrize(
    "body",
    [
        {"resources": {"gpus": False}},
        {"resources": {"cpus": "2"}},
        {"hyperparameters": {"steps": 4000.0}},
        {"hyperparameters": {"seed": True}},
    ],
)
def test_a_body_the_schema_calls_invalid_is_refused_not_coerced(body: dict[str, Any]) -> None:
    # Found by the schemathesis run: pydantic's lax mode took false for 0 and "2" for 2,
    # and submitted the job.
    slurm = FakeSlurm()
    app = build_app(_rl_dirs_in(Path(tempfile.mkdtemp(dir=_TMP.name))), slurm)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient

        response = TestClient(app).post("/training/rl/start", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert not slurm.jobs, "a refused request reached Slurm"
    assert response.json()["detail"][0]["loc"][0] == "body"
