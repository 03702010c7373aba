"""The layer's cluster, cleanup and version helpers: describe, probe, delete, versions."""

from __future__ import annotations

import socket
from importlib import metadata

import pytest
from confluent_kafka import KafkaError, KafkaException

from streamplane.platform.kafka import admin
from streamplane.platform.kafka.config import demo_producer_config, versions
from streamplane.platform.kafka.errors import is_leader_settling, translate
from streamplane.platform.kafka.exceptions import KafkaAdminError, KafkaUnavailable
from streamplane.testing.deadline import wait_until
from streamplane.testing.topics import FreshTopics, unique_name


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.kafka
def test_describe_cluster_names_the_cluster_and_its_broker(kafka_bootstrap: str) -> None:
    conf = {"bootstrap.servers": kafka_bootstrap}
    cluster = admin.describe_cluster(conf, timeout=10)
    assert cluster.cluster_id
    assert len(cluster.brokers) == 1
    probe = admin.MetadataProbe(conf)
    # The probe keeps one client: asked twice, it answers the same both times.
    assert probe.describe(timeout=5) == cluster
    assert probe.describe(timeout=5) == cluster


def test_an_unreachable_cluster_is_unavailable() -> None:
    conf = {"bootstrap.servers": f"127.0.0.1:{_closed_port()}", "log_level": 0}
    with pytest.raises(KafkaUnavailable) as caught:
        admin.describe_cluster(conf, timeout=0.5)
    assert caught.value.__cause__ is not None
    with pytest.raises(KafkaUnavailable):
        admin.MetadataProbe(conf).describe(timeout=0.5)


@pytest.mark.kafka
def test_delete_topics_deletes_and_ignores_missing_ones(
    kafka_bootstrap: str, fresh_topics: FreshTopics
) -> None:
    conf = {"bootstrap.servers": kafka_bootstrap}
    admin.ensure_topics(conf, {fresh_topics.input: 2, fresh_topics.output: 1})
    never_made = unique_name("never-made")
    failures = admin.delete_topics(conf, [fresh_topics.input, fresh_topics.output, never_made])
    assert failures == {}
    assert admin.delete_topics(conf, []) == {}
    # Deleted: the topics leave the metadata (the broker's cache may take a moment).

    def gone() -> bool:
        for topic in (fresh_topics.input, fresh_topics.output):
            try:
                admin.topic_partitions(conf, topic)
            except KafkaAdminError:
                continue
            return False
        return True

    wait_until(gone, timeout=30, message="deleted topics still in the metadata")


def test_delete_topics_on_an_unreachable_cluster_reports_each_topic() -> None:
    conf = {"bootstrap.servers": f"127.0.0.1:{_closed_port()}", "log_level": 0}
    failures = admin.delete_topics(conf, ["a", "b"], timeout=0.5)
    assert sorted(failures) == ["a", "b"]
    assert all(isinstance(error, KafkaUnavailable) for error in failures.values())


def test_leader_settling_codes_are_told_apart() -> None:
    for code in (KafkaError.LEADER_NOT_AVAILABLE, KafkaError.UNKNOWN_TOPIC_OR_PART):
        assert is_leader_settling(translate(KafkaException(KafkaError(code)), "watermarks"))
    other = translate(KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)), "x")
    assert not is_leader_settling(other)
    assert not is_leader_settling(KafkaUnavailable("no answer before the deadline"))


def test_versions_and_the_demo_producer_config() -> None:
    found = versions()
    assert found["confluent-kafka"] == metadata.version("confluent-kafka")
    assert found["librdkafka"].count(".") >= 2
    conf = demo_producer_config({"bootstrap.servers": "h:1"})
    assert conf == {"bootstrap.servers": "h:1", "linger.ms": 20, "compression.type": "lz4"}
