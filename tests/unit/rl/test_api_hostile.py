"""The training API against hostile requests: the token before the body, a bounded body,
non-finite numbers, job output behind the token, wrong methods and paths.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from streamplane.config import RLSettings, Settings
from streamplane.rl.api import create_training_router
from streamplane.rl.slurm.client import SlurmClient
from streamplane.rl.slurm.runs import TrainingService
from tests.rl_support.fakes import FakeSlurm

AUTH = {"Authorization": "Bearer test-token"}
MIB = 1024 * 1024


@pytest.fixture
def fake() -> FakeSlurm:
    return FakeSlurm()


@pytest.fixture
def app(training_settings: RLSettings, fake: FakeSlurm) -> FastAPI:
    service = TrainingService(training_settings, SlurmClient(fake), clock=lambda: 1_700_000_000.0)
    app = FastAPI()
    app.include_router(
        create_training_router(Settings(), training=training_settings, service=service)
    )
    return app


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app)


class StreamedPost:
    """One POST driven straight through ASGI, its body offered in chunks on demand.

    TestClient reads a request's whole body before the app sees it; this counts how much
    of the body the app actually asked for.
    """

    def __init__(self, chunks: int, chunk: bytes, headers: dict[str, str]) -> None:
        self.left = chunks
        self.chunk = chunk
        self.read_bytes = 0
        self.status = 0
        self.body = b""
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def receive(self) -> dict[str, Any]:
        if self.left == 0:
            return {"type": "http.disconnect"}
        self.left -= 1
        self.read_bytes += len(self.chunk)
        return {"type": "http.request", "body": self.chunk, "more_body": self.left > 0}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    def run(self, app: FastAPI, path: str = "/training/rl/start") -> StreamedPost:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-type", b"application/json"), *self.headers],
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 8080),
        }
        asyncio.run(app(scope, self.receive, self.send))  # type: ignore[arg-type]
        return self


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Content-Length": str(300 * MIB)}],
    ids=["no-token", "wrong-token", "no-token-announced-300MiB"],
)
def test_unauthenticated_body_is_refused_before_it_is_read(
    app: FastAPI, fake: FakeSlurm, headers: dict[str, str]
) -> None:
    post = StreamedPost(64, b" " * MIB, headers).run(app)
    assert post.status == 401, post.body
    assert post.read_bytes == 0, f"read {post.read_bytes} bytes of a refused request"
    assert fake.calls == []


def test_a_body_over_the_cap_is_413_after_at_most_the_cap(app: FastAPI, fake: FakeSlurm) -> None:
    chunk = b" " * 4096
    post = StreamedPost(64 * MIB // len(chunk), chunk, AUTH).run(app)
    assert post.status == 413, post.body
    assert post.read_bytes <= 64 * 1024 + len(chunk)
    assert fake.calls == []


def test_an_announced_body_over_the_cap_is_413_unread(app: FastAPI, fake: FakeSlurm) -> None:
    post = StreamedPost(64, b" " * MIB, {**AUTH, "Content-Length": str(64 * MIB)}).run(app)
    assert post.status == 413, post.body
    assert post.read_bytes == 0
    assert fake.calls == []


@pytest.mark.parametrize(
    "text",
    [
        '{"hyperparameters": {"learning_rate": NaN}}',
        '{"hyperparameters": {"gamma": Infinity}}',
        '{"hyperparameters": {"learning_rate": -Infinity}}',
        '{"hyperparameters": {"target_tau": 1e999}}',
        '{"resources": {"cpus": NaN}}',
        '{"hyperparameters": {"steps": Infinity}}',
        "NaN",
    ],
)
def test_non_finite_numbers_are_422(client: TestClient, fake: FakeSlurm, text: str) -> None:
    response = client.post(
        "/training/rl/start",
        content=text.encode(),
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"]
    assert fake.calls == []


def test_job_status_and_log_tail_need_the_token(client: TestClient, fake: FakeSlurm) -> None:
    started = client.post("/training/rl/start", json={}, headers=AUTH)
    assert started.status_code == 202, started.text
    path = started.json()["status_url"]
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        refused = client.get(path, headers=headers)
        assert refused.status_code == 401, refused.text
        assert "log_tail" not in refused.text
    shown = client.get(path, headers=AUTH)
    assert shown.status_code == 200
    assert "log_tail" in shown.json()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/training/rl/start"),
        ("PUT", "/training/rl/start"),
        ("DELETE", "/training/rl/start"),
        ("POST", "/training/rl/status/abc"),
        ("DELETE", "/training/rl/status/abc"),
    ],
)
def test_wrong_methods_are_405(client: TestClient, fake: FakeSlurm, method: str, path: str) -> None:
    assert client.request(method, path, headers=AUTH).status_code == 405
    assert fake.calls == []


@pytest.mark.parametrize(
    "path",
    [
        "/training/rl/status/../../../etc/passwd",
        "/training/rl/status/..%2F..%2F..%2Fetc%2Fpasswd",
        "/training/rl/status/%2e%2e%2f%2e%2e%2fetc",
        "/training/rl/status/..",
        "/training/rl/status/task;id",
        "/training/rl/status/$(id)",
        "/training/rl/status/%00",
    ],
)
def test_traversal_and_odd_task_ids_are_404(client: TestClient, path: str) -> None:
    assert client.get(path, headers=AUTH).status_code == 404


_NESTED_FIELDS = {
    "hyperparameters": [
        "steps",
        "batch_size",
        "learning_rate",
        "gamma",
        "target_tau",
        "hidden",
        "layers",
        "eval_episodes",
        "seed",
    ],
    "resources": ["cpus", "gpus", "memory_mb", "time_limit_minutes"],
}


@pytest.mark.parametrize("text", ["1; id", "$(id)"])
@pytest.mark.parametrize(
    ("section", "field"), [(s, f) for s, fields in _NESTED_FIELDS.items() for f in fields]
)
def test_shell_text_in_every_nested_field_is_422(
    client: TestClient, fake: FakeSlurm, section: str, field: str, text: str
) -> None:
    response = client.post("/training/rl/start", json={section: {field: text}}, headers=AUTH)
    assert response.status_code == 422, response.text
    assert fake.calls == []


@pytest.mark.parametrize("key", ["$(id)", "; id", "--export=ALL", "../x"])
def test_shell_text_as_a_field_name_is_422(client: TestClient, fake: FakeSlurm, key: str) -> None:
    for body in ({key: 1}, {"hyperparameters": {key: 1}}, {"resources": {key: 1}}):
        assert client.post("/training/rl/start", json=body, headers=AUTH).status_code == 422
    assert fake.calls == []
