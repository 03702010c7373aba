"""What ``workspace.yaml`` loads, and how the resources come from the environment."""

from __future__ import annotations

import os

import pytest
from dagster import AssetKey, Definitions, EnvVar

from streamplane.config import load_settings
from streamplane.definitions import build_definitions
from streamplane.exceptions import ConfigError
from streamplane.resources import (
    KafkaResource,
    StreamplaneResource,
    resources_from_environment,
)
from streamplane.sensors.rl import RL_SCHEDULES, RL_SENSORS


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: no settings variable leaks in from the shell."""
    for name in list(os.environ):
        if name.startswith(("KAFKA_", "STREAMPLANE_", "SUPERVISOR_", "WORKER_")) or name in (
            "INPUT_TOPIC",
            "OUTPUT_TOPIC",
            "DLQ_TOPIC",
            "CONSUMER_GROUP",
            "MAX_INFLIGHT",
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("KAFKA_BROKERS", "kafka-1:9092,kafka-2:9092")


def test_definitions_hold_everything() -> None:
    defs = build_definitions()
    Definitions.validate_loadable(defs)
    repository = defs.get_repository_def()
    assert {job.name for job in repository.get_all_jobs()} >= {
        "supervisor_job",
        "worker_job",
        "gpu_worker_job",
        "feature_snapshot_job",
    }
    assert {s.name for s in repository.sensor_defs} == {
        "kafka_lag_sensor",
        "supervisor_liveness_sensor",
        *(s.name for s in RL_SENSORS),
    }
    assert [s.name for s in repository.schedule_defs] == [
        "feature_snapshot_schedule",
        *(s.name for s in RL_SCHEDULES),
    ]
    graph = defs.resolve_asset_graph()
    assert graph.get(AssetKey("feature_events")).parent_keys == {AssetKey("raw_events")}
    assert graph.get(AssetKey("feature_snapshot")).parent_keys == {AssetKey("feature_events")}
    assert graph.get(AssetKey("feature_backfill")).parent_keys == {AssetKey("raw_events")}
    assert not graph.get(AssetKey("raw_events")).is_materializable


def test_sensor_intervals_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMPLANE_LAG_SENSOR_INTERVAL_S", "7")
    repository = build_definitions().get_repository_def()
    assert repository.get_sensor_def("kafka_lag_sensor").minimum_interval_seconds == 7


def test_secrets_stay_environment_references(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "streamplane")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "s3cret")
    kafka = resources_from_environment()["kafka"]
    assert isinstance(kafka, KafkaResource)
    assert kafka.sasl_password == EnvVar("KAFKA_SASL_PASSWORD")
    assert "s3cret" not in repr(kafka)


def test_kafka_settings_go_through_the_allowlist() -> None:
    kafka = KafkaResource(
        bootstrap_servers="k:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password="p",
    )
    assert kafka.librdkafka_conf() == {
        "bootstrap.servers": "k:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "u",
        "sasl.password": "p",
    }
    assert kafka.process_env()["KAFKA_SASL_PASSWORD"] == "p"


def test_a_bad_face_variable_names_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMPLANE_MAX_WORKERS", "-1")
    with pytest.raises(ConfigError, match="STREAMPLANE_MAX_WORKERS"):
        load_settings()


def test_supervisor_slots_shift_ports_with_a_stride() -> None:
    streamplane = StreamplaneResource(
        kafka=KafkaResource(bootstrap_servers="k:9092"),
        supervisor_listen="127.0.0.1:7000",
        supervisor_http_listen=":8080",
        supervisor_port_stride=10,
    )
    slot0, slot2 = streamplane.supervisor_env(0), streamplane.supervisor_env(2)
    assert (slot0["SUPERVISOR_LISTEN"], slot0["SUPERVISOR_HTTP_LISTEN"]) == (
        "127.0.0.1:7000",
        ":8080",
    )
    assert (slot2["SUPERVISOR_LISTEN"], slot2["SUPERVISOR_HTTP_LISTEN"]) == (
        "127.0.0.1:7020",
        ":8100",
    )
    assert slot2["DLQ_TOPIC"] == "raw.events.demo.dlq"
