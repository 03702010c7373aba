"""The container stack for real: built from a locally made base, up, fed, a worker killed.

`make streaming-up STREAMING_IMAGES=local` builds every image from a Debian bookworm base
made on this machine (scripts/docker-base-image.sh: mmdebstrap + docker import, cached),
with the wheels and Kafka jars prepared on the host, and starts the whole stack: Kafka,
topics, supervisor, two workers, the three mesh nodes, PostgreSQL, the Dagster webserver
and daemon. The tests then produce demo events from the host into the published Kafka
port, read the output topic back from the host, ask the Dagster webserver what it
loaded, and `docker kill` a worker container mid-stream: nothing may be lost.

The project name and host ports are the test's own, so a developer's stack (or their
`docker/streaming/.env`) is never touched; `make streaming-down STREAMING_PURGE=1`
removes the containers, network and volumes at the end. Without a Docker daemon the
tests skip, or fail under STREAMPLANE_REQUIRE_ALL=1 (`make test` starts one as root).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.docker.stack import REPO, TEMPLATE, clean_env, compose_command, require
from tests.support.audit import Audit, audit_topics

pytestmark = [pytest.mark.stack, pytest.mark.timeout(2400)]

INPUT_TOPIC = "raw.events.demo"
OUTPUT_TOPIC = "features.events.demo"
DLQ_TOPIC = f"{INPUT_TOPIC}.dlq"
WORKERS = 2
# Services that run until stopped, each with a health check; `topics` runs once.
LONG_RUNNING = (
    "broker",
    "supervisor",
    "worker",
    "mesh-hub",
    "mesh-worker",
    "mesh-trainer",
    "postgres",
    "dagster-webserver",
    "dagster-daemon",
)
FEATURE_COLUMNS = (
    "event_id",
    "tenant",
    "user_id",
    "event_type",
    "value",
    "ts",
    "src_timestamp_ms",
    "value_log1p",
    "hour_of_day",
    "day_of_week",
    "is_weekend",
    "is_conversion",
    "user_events_in_batch",
    "user_value_sum_in_batch",
)
# Generous bounds for a loaded 2-core machine; none of them is asserted as a timing.
BUILD_UP_TIMEOUT_S = 1800
HEALTHY_TIMEOUT_S = 420
DRAIN_TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    """A running compose project of the test's own."""

    project: str
    env: dict[str, str]
    kafka: str
    dagster_url: str
    supervisor_url: str
    timings: dict[str, float] = field(default_factory=dict)

    def make(self, target: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", "--no-print-directory", target],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def docker(self, *args: str, timeout: float = 60) -> str:
        result = subprocess.run(
            ["docker", *args], capture_output=True, text=True, timeout=timeout, env=self.env
        )
        assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
        return result.stdout

    def containers(self, service: str | None = None, *, running: bool = True) -> list[str]:
        filters = ["--filter", f"label=com.docker.compose.project={self.project}"]
        if service is not None:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        return self.docker("ps", "-q", *([] if running else ["-a"]), *filters).split()

    def inspect(self, container: str) -> dict[str, object]:
        data: list[dict[str, object]] = json.loads(self.docker("inspect", container))
        return data[0]

    def logs(self, tail: int = 40) -> str:
        """The last lines of every container's log, for a failure message."""
        out = []
        for container in self.containers(running=False):
            name = str(self.inspect(container)["Name"]).lstrip("/")
            result = subprocess.run(
                ["docker", "logs", "--tail", str(tail), container],
                capture_output=True,
                text=True,
                timeout=60,
            )
            out.append(f"--- {name}\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
        return "\n".join(out)


def _health(stack: Stack, container: str) -> str:
    state = stack.inspect(container)["State"]
    assert isinstance(state, dict)
    health = state.get("Health")
    if not isinstance(health, dict):
        return str(state.get("Status"))
    return str(health.get("Status"))


def _wait_healthy(stack: Stack) -> None:
    deadline = time.monotonic() + HEALTHY_TIMEOUT_S
    pending: dict[str, str] = {}
    while time.monotonic() < deadline:
        pending = {}
        for service in LONG_RUNNING:
            containers = stack.containers(service)
            expected = WORKERS if service == "worker" else 1
            if len(containers) != expected:
                pending[service] = f"{len(containers)} of {expected} running"
                continue
            for container in containers:
                status = _health(stack, container)
                if status != "healthy":
                    pending[service] = status
        if not pending:
            return
        time.sleep(3)
    pytest.fail(f"not healthy within {HEALTHY_TIMEOUT_S}s: {pending}\n{stack.logs()}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    docker = shutil.which("docker")
    require(docker is not None, "no docker CLI: apt-get install docker.io")
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    require(
        probe.returncode == 0,
        "no Docker daemon answers 'docker info': start dockerd (make test does as root)",
    )
    require(compose_command() is not None, "no Docker Compose: apt-get install docker-compose")
    require(shutil.which("make") is not None, "make is missing: apt-get install make")
    base = subprocess.run(
        ["docker", "image", "inspect", "local/debian:bookworm"], capture_output=True, timeout=60
    )
    require(
        base.returncode == 0 or shutil.which("mmdebstrap") is not None,
        "no base image and no mmdebstrap to make one: apt-get install mmdebstrap",
    )

    work = tmp_path_factory.mktemp("stack")
    env_file = work / ".env"
    shutil.copyfile(TEMPLATE, env_file)
    project = f"sptest{uuid.uuid4().hex[:8]}"
    kafka_port = _free_port()
    dagster_port = _free_port()
    http_port = _free_port()
    env = clean_env(
        COMPOSE_PROJECT_NAME=project,
        STREAMING_ENV_FILE=str(env_file),
        STREAMING_IMAGES="local",
        STREAMING_WORKERS=str(WORKERS),
        KAFKA_HOST_PORT=str(kafka_port),
        KAFKA_ADVERTISED_HOST="127.0.0.1",
        DAGSTER_HOST_PORT=str(dagster_port),
        SUPERVISOR_HTTP_HOST_PORT=str(http_port),
        SUPERVISOR_GRPC_HOST_PORT=str(_free_port()),
        STREAMING_PURGE="1",
    )
    for name in ("STREAMPLANE_CACHE_DIR", "DOCKER_HOST", "PIP_INDEX_URL"):
        if name in os.environ:
            env[name] = os.environ[name]
    stack = Stack(
        project=project,
        env=env,
        kafka=f"127.0.0.1:{kafka_port}",
        dagster_url=f"http://127.0.0.1:{dagster_port}",
        supervisor_url=f"http://127.0.0.1:{http_port}",
    )
    started = time.monotonic()
    try:
        up = stack.make("streaming-up", timeout=BUILD_UP_TIMEOUT_S)
        stack.timings["build_and_up_s"] = time.monotonic() - started
        assert up.returncode == 0, f"make streaming-up:\n{up.stdout[-6000:]}\n{up.stderr[-6000:]}"
        _wait_healthy(stack)
        stack.timings["healthy_s"] = time.monotonic() - started
        yield stack
    finally:
        down = stack.make("streaming-down", timeout=600) if shutil.which("make") else None
        leftover = stack.containers(running=False)
        print(f"stack {project}: {stack.timings}")
        assert down is not None
        assert down.returncode == 0, down.stderr
        assert leftover == [], f"containers left behind: {leftover}"


def test_every_service_is_healthy_and_runs_as_non_root(stack: Stack) -> None:
    for service in LONG_RUNNING:
        for container in stack.containers(service):
            config = stack.inspect(container)["Config"]
            assert isinstance(config, dict)
            user = str(config.get("User") or "")
            assert user.split(":")[0] not in ("", "0", "root"), f"{service} runs as {user!r}"
            assert _health(stack, container) == "healthy", service
            host_config = stack.inspect(container)["HostConfig"]
            assert isinstance(host_config, dict)
            assert host_config.get("Init") is True, f"{service}: no init process"
    topics = stack.containers("topics", running=False)
    assert len(topics) == 1
    state = stack.inspect(topics[0])["State"]
    assert isinstance(state, dict)
    assert state["ExitCode"] == 0, "the topics job failed"


def test_the_dagster_webserver_serves_the_code_location(stack: Stack) -> None:
    with urllib.request.urlopen(f"{stack.dagster_url}/server_info", timeout=30) as reply:
        assert reply.status == 200
        assert "dagster_webserver_version" in json.load(reply)
    query = (
        "{ workspaceOrError { __typename ... on Workspace { locationEntries { name "
        "locationOrLoadError { __typename ... on RepositoryLocation { repositories "
        "{ name jobs { name } } } ... on PythonError { message } } } } } }"
    )
    request = urllib.request.Request(
        f"{stack.dagster_url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as reply:
        body = json.load(reply)
    entries = body["data"]["workspaceOrError"]["locationEntries"]
    assert entries, body
    loaded = [e["locationOrLoadError"] for e in entries]
    assert all(x["__typename"] == "RepositoryLocation" for x in loaded), loaded
    jobs = {j["name"] for x in loaded for r in x["repositories"] for j in r["jobs"]}
    assert jobs, f"the code location has no jobs: {loaded}"


def _output_count(bootstrap: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "stack-test-probe"})
    try:
        meta = consumer.list_topics(OUTPUT_TOPIC, timeout=10).topics[OUTPUT_TOPIC]
        total = 0
        for partition in meta.partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(OUTPUT_TOPIC, partition), timeout=10
            )
            total += high - low
        return total
    finally:
        consumer.close()


def _produce(stack: Stack, count: int, rate: int, cwd: Path) -> subprocess.Popen[str]:
    """The host's `streamplane produce` against the stack's published Kafka port."""
    streamplane = Path(shutil.which("streamplane") or REPO / ".venv" / "bin" / "streamplane")
    env = clean_env(KAFKA_BROKERS=stack.kafka, INPUT_TOPIC=INPUT_TOPIC)
    if "PYTHONPATH" in os.environ:  # the streamplane under test, if not the installed one
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return subprocess.Popen(
        [
            *(str(streamplane), "produce", "--count", str(count), "--rate", str(rate)),
            *("--tenants", "3", "--bad-fraction", "0"),
        ],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_events_become_features_and_a_killed_worker_loses_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    count, rate = 30000, 2000
    producer = _produce(stack, count, rate, tmp_path)
    killed = ""
    try:
        # Mid-stream: some features are out, the producer is still writing.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _output_count(stack.kafka) < 2000:
            assert producer.poll() is None or producer.returncode == 0
            time.sleep(0.5)
        assert _output_count(stack.kafka) >= 2000, "no features arrived\n" + stack.logs()
        assert producer.poll() is None, "the kill must land while events still arrive"
        workers = stack.containers("worker")
        assert len(workers) == WORKERS
        killed = workers[0]
        stack.docker("kill", killed)
        out, _ = producer.communicate(timeout=300)
        assert producer.returncode == 0, out
    finally:
        if producer.poll() is None:
            producer.kill()
            producer.wait()

    audit = _wait_for_every_event(stack, count)
    assert audit.lost == [], audit.summary()
    assert audit.bogus == [], audit.summary()
    assert not audit.dead, f"well-formed events were dead-lettered: {audit.summary()}"
    # Every event's features, matched to its input record by the sp-src-* headers.
    for record in audit.outputs:
        source = (int(record.headers["sp-src-partition"]), int(record.headers["sp-src-offset"]))
        event = orjson.loads(audit.inputs[source].value or b"")
        features = orjson.loads(record.value or b"")
        missing = [c for c in FEATURE_COLUMNS if c not in features]
        assert not missing, f"{source}: no {missing}"
        assert features["event_id"] == event["event_id"], source
        assert features["value"] == pytest.approx(float(event["value"]))
        assert record.key == audit.inputs[source].key
    state = stack.inspect(killed)["State"]
    assert isinstance(state, dict)
    restarts = stack.inspect(killed).get("RestartCount")
    print(
        f"killed worker {killed[:12]}: state {state.get('Status')}, restarts {restarts}; "
        f"{audit.summary()}"
    )


def _wait_for_every_event(stack: Stack, count: int) -> Audit:
    """Audit the topics until every input is accounted for, or the deadline passes."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while True:
        audit = audit_topics(stack.kafka, INPUT_TOPIC, OUTPUT_TOPIC, DLQ_TOPIC)
        assert len(audit.inputs) == count, f"{len(audit.inputs)} inputs, {count} produced"
        if not audit.lost or time.monotonic() > deadline:
            return audit
        time.sleep(5)
