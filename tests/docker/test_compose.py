"""compose.yaml resolves with `docker-compose config`: template values, edits, overrides."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from streamplane.config import RUNTIME_SECTIONS, variables
from tests.docker.stack import (
    ALL_SERVICES,
    COMPOSE,
    DAGSTER_SERVICES,
    EXTERNAL_KAFKA,
    LOCAL_IMAGES,
    MANIFEST,
    REPO,
    STREAMPLANE_SERVICES,
    TEMPLATE,
    compose_config,
    parse_env_file,
    service_env,
)

# What a plane process reads, plus the two RL variables of the seed's table.
RUNTIME = {
    **variables(*RUNTIME_SECTIONS),
    "RL_RESULTS_TOPIC": ("rl", "rl_results_topic"),
    "RL_BUFFER_DIR": ("rl", "rl_buffer_dir"),
}

# Set by compose.yaml for the containers alone, commented out in the template: a file the
# image holds, and HTTP on every interface of the container (the runtime default is
# loopback; health checks and the host need more).
CONTAINER_ONLY = {
    "MESH_SERVICES_FILE": "/etc/streamplane/mesh-services.json",
    "SUPERVISOR_HTTP_LISTEN": ":8080",
}

_INTERPOLATION = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?::-([^}]*))?\}")


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", value)
    assert value, "empty duration"
    assert match, f"not a duration: {value!r}"
    return int(match.group(1) or 0) * 60 + float(match.group(2) or 0)


def test_config_with_the_template_values(model: dict[str, Any]) -> None:
    assert set(model["services"]) == set(ALL_SERVICES)
    active, _ = parse_env_file(TEMPLATE)
    for service in STREAMPLANE_SERVICES:
        env = service_env(model, service)
        for name in RUNTIME:
            if name in active:
                assert env.get(name) == active[name], f"{service}: {name}"
            elif name in CONTAINER_ONLY:
                assert env.get(name) == CONTAINER_ONLY[name], f"{service}: {name}"
            else:
                assert name not in env, f"{service}: {name} is unset in the template"


def test_exported_variables_override_the_env_file(compose: list[str], env_file: Path) -> None:
    overrides = {
        "KAFKA_BROKERS": "kafka-1.example:9093,kafka-2.example:9093",
        "INPUT_TOPIC": "clicks",
        "MAX_INFLIGHT": "16",
        "MESH_ENDPOINT": "mesh-worker:9002",  # unset in the template: passed once exported
        "KAFKA_SASL_PASSWORD": "s3cret",
        "STREAMPLANE_MAX_WORKERS": "2",
        "DAGSTER_HOST_PORT": "3300",
    }
    model = compose_config(compose, env_file, **overrides)
    for service in STREAMPLANE_SERVICES:
        env = service_env(model, service)
        for name in ("KAFKA_BROKERS", "INPUT_TOPIC", "MAX_INFLIGHT", "MESH_ENDPOINT"):
            assert env[name] == overrides[name], f"{service}: {name}"
        assert env["KAFKA_SASL_PASSWORD"] == "s3cret"
    for service in DAGSTER_SERVICES:
        assert service_env(model, service)["STREAMPLANE_MAX_WORKERS"] == "2"
    ports = str(model["services"]["dagster-webserver"]["ports"])
    assert "3300" in ports


def test_edits_to_the_env_file_apply(compose: list[str], env_file: Path) -> None:
    text = env_file.read_text()
    text = text.replace("OUTPUT_TOPIC=features.events.demo", "OUTPUT_TOPIC=features.v2")
    text = text.replace("# RL_BUFFER_DIR=", "RL_BUFFER_DIR=/data/rl-buffer")
    env_file.write_text(text)
    model = compose_config(compose, env_file, OUTPUT_TOPIC="from.shell")
    env = service_env(model, "worker")
    assert env["RL_BUFFER_DIR"] == "/data/rl-buffer"
    assert env["OUTPUT_TOPIC"] == "from.shell"  # the shell still wins over the edit
    env = service_env(compose_config(compose, env_file), "worker")
    assert env["OUTPUT_TOPIC"] == "features.v2"


def test_config_against_an_external_kafka(compose: list[str], env_file: Path) -> None:
    model = compose_config(
        compose,
        env_file,
        (COMPOSE, EXTERNAL_KAFKA),
        KAFKA_BROKERS="kafka.example:9092",
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
    )
    broker = model["services"]["broker"]
    assert broker["image"] == model["services"]["supervisor"]["image"]
    assert broker["healthcheck"]["test"][-1] == "kafka"
    env = service_env(model, "broker")
    assert env["KAFKA_BROKERS"] == "kafka.example:9092"
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert service_env(model, "supervisor")["KAFKA_BROKERS"] == "kafka.example:9092"


def test_runtime_and_dagster_settings_reach_their_services(model: dict[str, Any]) -> None:
    declared = {
        service: set(model["services"][service].get("environment") or {})
        for service in STREAMPLANE_SERVICES
    }
    for service, names in declared.items():
        missing = [name for name in RUNTIME if name not in names]
        assert not missing, f"{service} does not pass {missing}"
    for service in DAGSTER_SERVICES:
        face = list(variables("face"))
        assert not [n for n in face if n not in declared[service]], service


def test_compose_defaults_repeat_the_template() -> None:
    """`${NAME:-default}` in compose.yaml says what env.template says, and nothing else."""
    active, commented = parse_env_file(TEMPLATE)
    for path in (COMPOSE, EXTERNAL_KAFKA, LOCAL_IMAGES):
        for name, default in _INTERPOLATION.findall(path.read_text()):
            assert name in active or name in commented, f"{path.name}: {name} not in template"
            if name in CONTAINER_ONLY:
                assert default == CONTAINER_ONLY[name]
            elif name in active:
                assert default == active[name], f"{path.name}: {name} default {default!r}"


def test_services_wait_on_health_checks(model: dict[str, Any]) -> None:
    services: dict[str, Any] = model["services"]
    for name, service in services.items():
        for target, spec in (service.get("depends_on") or {}).items():
            condition = spec["condition"]
            if condition == "service_healthy":
                assert services[target].get("healthcheck"), f"{name} waits on {target}"
            else:
                assert condition == "service_completed_successfully", f"{name} -> {target}"
                assert services[target].get("restart") in {"no", None}, target
    for name in ("broker", "postgres", "supervisor", "mesh-hub", "dagster-webserver"):
        assert services[name]["healthcheck"]["test"], name


def test_restart_policies_and_drain_grace(model: dict[str, Any]) -> None:
    services = model["services"]
    active, _ = parse_env_file(TEMPLATE)
    drain = float(active["DRAIN_TIMEOUT_S"])
    for name, service in services.items():
        expected = "no" if name == "topics" else "unless-stopped"
        assert service.get("restart") == expected, name
    for name in ("supervisor", "worker", "dagster-daemon"):
        assert _seconds(services[name]["stop_grace_period"]) > drain, name


def test_worker_scales(model: dict[str, Any]) -> None:
    worker = model["services"]["worker"]
    assert "container_name" not in worker
    assert not worker.get("ports"), "a host port would stop --scale worker=N"
    assert "WORKER_ID" not in service_env(model, "worker"), "each replica needs its own id"


def test_addresses_name_services(model: dict[str, Any]) -> None:
    env = service_env(model, "worker")
    assert env["KAFKA_BROKERS"].split(":")[0] in model["services"]
    assert env["SUPERVISOR_GRPC_ADDR"].split(":")[0] in model["services"]
    volumes = set(model.get("volumes") or {})
    assert {"kafka-data", "postgres-data", "dagster-storage", "streamplane-data"} <= volumes


def test_mesh_nodes_match_the_manifest(model: dict[str, Any]) -> None:
    import json

    services = model["services"]
    nodes = json.loads(MANIFEST.read_text())["nodes"]
    assert len(nodes) == 3
    for node in nodes:
        host, _, port = node["endpoint"].rpartition(":")
        assert host in services, f"no service {host} for node {node['id']}"
        command = services[host]["command"]
        assert command[0] == "mesh-node"
        assert command[command.index("--node-id") + 1] == node["id"]
        # The node listens on its endpoint's port unless --listen says otherwise.
        if "--listen" in command:
            assert command[command.index("--listen") + 1] == f":{port}"
        assert services[host]["healthcheck"]["test"][-1] == f"127.0.0.1:{port}"
        assert service_env({"services": services}, host)["MESH_SERVICES_FILE"] == (
            "/etc/streamplane/mesh-services.json"
        )


@pytest.mark.parametrize("bad", ["KAFKA_BROKERS", "INPUT_TOPIC"])
def test_unset_required_values_fall_back_to_the_template_default(
    compose: list[str], tmp_path: Path, bad: str
) -> None:
    """A .env from an older template (lacking a line) still resolves to the default."""
    env_file = tmp_path / ".env"
    lines = [ln for ln in TEMPLATE.read_text().splitlines() if not ln.startswith(f"{bad}=")]
    env_file.write_text("\n".join(lines) + "\n")
    active, _ = parse_env_file(TEMPLATE)
    env = service_env(compose_config(compose, env_file), "supervisor")
    assert env[bad] == active[bad]


def test_local_images_build_kafka_and_postgres_from_the_local_base(
    compose: list[str], env_file: Path
) -> None:
    model = compose_config(
        compose, env_file, (COMPOSE, LOCAL_IMAGES), STREAMING_BASE_IMAGE="local/debian:test"
    )
    services: dict[str, Any] = model["services"]
    for name, dockerfile, image in (
        ("broker", "docker/kafka/Dockerfile", "streamplane-kafka:local"),
        ("postgres", "docker/postgres/Dockerfile", "streamplane-postgres:local"),
    ):
        service = services[name]
        assert service["image"] == image
        assert service["build"]["dockerfile"] == dockerfile
        assert service["build"]["args"]["BASE_IMAGE"] == "local/debian:test"
        assert (REPO / dockerfile).is_file()
    # The rest of the stack keeps its health checks and settings unchanged.
    assert services["broker"]["healthcheck"]["test"][-1].startswith(
        "/opt/kafka/bin/kafka-broker-api-versions.sh"
    )
    assert service_env(model, "postgres")["POSTGRES_DB"] == "dagster"


def test_the_streamplane_base_image_is_a_build_argument(compose: list[str], env_file: Path) -> None:
    default = compose_config(compose, env_file)
    args = default["services"]["supervisor"]["build"]["args"]
    assert args["PYTHON_IMAGE"] == "python:3.11-slim-bookworm"
    local = compose_config(compose, env_file, STREAMPLANE_PYTHON_IMAGE="local/debian:bookworm")
    for name in STREAMPLANE_SERVICES:
        assert local["services"][name]["build"]["args"]["PYTHON_IMAGE"] == "local/debian:bookworm"


def test_every_service_runs_under_an_init(model: dict[str, Any]) -> None:
    """PID 1 forwards signals and reaps: `down` never waits on an ignored SIGTERM."""
    for name in ALL_SERVICES:
        assert model["services"][name].get("init") is True, name


def test_every_long_running_service_has_a_health_check(model: dict[str, Any]) -> None:
    one_shot = {"topics", "producer"}
    for name in ALL_SERVICES:
        if name not in one_shot:
            assert model["services"][name].get("healthcheck", {}).get("test"), name
