"""RL as a supervisor extension: no RL thread without RL configured, the API served always."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from streamplane.config import Settings
from streamplane.platform.supervisor.extensions import SupervisorExtension
from streamplane.rl.host import RLExtension

AUTH = {"Authorization": "Bearer test-token"}
RL_VARIABLES = ("RL_RESULTS_TOPIC", "RL_BUFFER_DIR", "RL_POLICY_DIR", "RL_TRAINING_DIR")


@pytest.fixture(autouse=True)
def _no_rl_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in RL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def _rl_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "training-monitor"}


def test_without_rl_configured_no_thread_starts_and_the_api_answers_503(
    caplog: pytest.LogCaptureFixture,
) -> None:
    extension: SupervisorExtension = RLExtension(Settings(training_api_token="test-token"))
    before = _rl_threads()
    with caplog.at_level(logging.DEBUG):
        extension.start()
        try:
            assert _rl_threads() == before
            assert isinstance(extension, RLExtension)
            assert not extension.monitoring
            assert extension.problem() is None
            app = FastAPI()
            router = extension.router()
            assert router is not None
            app.include_router(router)
            client = TestClient(app)
            response = client.post("/training/rl/start", json={}, headers=AUTH)
            assert response.status_code == 503
            assert "RL_BUFFER_DIR" in response.json()["detail"]
            assert client.get("/training/rl/status/abc", headers=AUTH).status_code == 503
        finally:
            extension.stop(timeout=5)
    assert not [r for r in caplog.records if "ConfigError" in r.getMessage() + str(r.exc_info)]


def test_with_a_training_dir_the_monitor_runs_until_stopped(tmp_path: Path) -> None:
    extension = RLExtension(Settings(rl_training_dir=tmp_path))
    assert extension.monitoring
    before = _rl_threads()
    extension.start()
    try:
        started = _rl_threads() - before
        assert len(started) == 1
    finally:
        extension.stop(timeout=5)
    assert not any(thread.is_alive() for thread in started)
