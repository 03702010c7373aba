"""The embedded Kafka broker, the admin/lag helpers and the topic reader, on a real broker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from streamplane.platform.kafka.admin import (
    committed_offsets,
    end_offsets,
    ensure_topics,
    group_lag,
    topic_partitions,
)
from streamplane.platform.kafka.broker import EmbeddedBroker, ensure_jars, find_java
from streamplane.platform.kafka.exceptions import (
    BrokerStartError,
    BrokerToolMissing,
    KafkaAdminError,
    KafkaUnavailable,
)
from tests.support.deadline import wait_until
from tests.support.topics import FreshTopics, read_all, unique_name

pytestmark = pytest.mark.kafka


def _conf(bootstrap: str) -> dict[str, str]:
    return {"bootstrap.servers": bootstrap}


def _produce(bootstrap: str, topic: str, count: int, partitions: int = 1) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(count):
        producer.produce(
            topic,
            key=f"k{i}".encode(),
            value=f"v{i}".encode(),
            partition=i % partitions,
            headers=[("seq", str(i).encode()), ("source", b"test")],
        )
    assert producer.flush(30) == 0, "records left unflushed"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# ------------------------------------------------------------------------- the broker


def test_session_broker_answers(kafka_bootstrap: str) -> None:
    host, _, port = kafka_bootstrap.rpartition(":")
    assert host
    assert int(port) > 0
    topic = unique_name("answers")
    ensure_topics(_conf(kafka_bootstrap), {topic: 1})
    assert topic_partitions(_conf(kafka_bootstrap), topic) == [0]


def test_restart_on_the_same_data_dir_keeps_topics_and_commits(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # kafka_bootstrap is requested so that a machine without java skips this test too.
    data_dir = tmp_path / "restart"
    topic, group = unique_name("restart"), unique_name("restart-group")
    with EmbeddedBroker(data_dir, port=0) as broker:
        first = broker.bootstrap
        ensure_topics(_conf(first), {topic: 2})
        _produce(first, topic, 10, partitions=2)
        _commit(first, group, topic, {0: 3})
    assert not broker.is_running
    cluster_id = (data_dir / "cluster-id").read_text()

    with EmbeddedBroker(data_dir, port=0) as broker:
        second = broker.bootstrap
        records = read_all(second, topic)
        assert [r.value for r in records if r.partition == 0] == [
            f"v{i}".encode() for i in range(0, 10, 2)
        ]
        assert len(records) == 10
        assert committed_offsets(_conf(second), group, topic) == {0: 3}
    assert (data_dir / "cluster-id").read_text() == cluster_id


def test_run_broker_prints_bootstrap_and_stops_on_sigterm(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    code = (
        "import sys; from pathlib import Path; "
        "from streamplane.platform.kafka.broker import run_broker; "
        f"sys.exit(run_broker(Path({str(tmp_path / 'fg')!r}), 0))"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(process.stdout or []), daemon=True)
        reader.start()
        try:
            wait_until(lambda: lines, timeout=120, message="run_broker printed no bootstrap line")
            assert lines[0].startswith("bootstrap: 127.0.0.1:")
            bootstrap = lines[0].removeprefix("bootstrap: ").strip()
            ensure_topics(_conf(bootstrap), {unique_name("fg"): 1})
        finally:
            process.send_signal(signal.SIGTERM)
            returncode = process.wait(timeout=60)
        reader.join(timeout=10)
        stderr = process.stderr.read() if process.stderr else ""
    assert returncode == 0, stderr
    assert len(lines) == 1, lines


def test_a_broker_that_exits_early_reports_its_log(kafka_bootstrap: str, tmp_path: Path) -> None:
    # The session broker holds its port, so a second broker there cannot bind and exits.
    port = int(kafka_bootstrap.rpartition(":")[2])
    broker = EmbeddedBroker(tmp_path / "clash", port=port)
    try:
        with pytest.raises(BrokerStartError, match=r"exited with .*tail of .*broker\.log"):
            broker.start(timeout=120)
        assert not broker.is_running
    finally:
        broker.stop()


# ------------------------------------------------------------------------- admin helpers


def test_ensure_topics_is_idempotent(kafka_bootstrap: str, fresh_topics: FreshTopics) -> None:
    conf = _conf(kafka_bootstrap)
    topics = {fresh_topics.input: 3, fresh_topics.output: 2}
    ensure_topics(conf, topics)
    ensure_topics(conf, topics)
    # A mismatched count is left alone (logged), not an error.
    ensure_topics(conf, {fresh_topics.input: 5})
    assert topic_partitions(conf, fresh_topics.input) == [0, 1, 2]
    assert topic_partitions(conf, fresh_topics.output) == [0, 1]


def test_ensure_topics_rejects_an_invalid_name(kafka_bootstrap: str) -> None:
    with pytest.raises(KafkaAdminError) as caught:
        ensure_topics(_conf(kafka_bootstrap), {"not a valid name!": 1})
    assert caught.value.code == KafkaError.TOPIC_EXCEPTION
    assert caught.value.__cause__ is not None


def test_unknown_topic_is_a_permanent_error(kafka_bootstrap: str) -> None:
    with pytest.raises(KafkaAdminError) as caught:
        end_offsets(_conf(kafka_bootstrap), unique_name("missing"), timeout=10)
    assert caught.value.code == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_unreachable_cluster_is_transient() -> None:
    conf = {"bootstrap.servers": f"127.0.0.1:{_closed_port()}"}
    with pytest.raises(KafkaUnavailable):
        end_offsets(conf, "anything", timeout=1)


def test_produced_records_read_back_with_headers(
    kafka_bootstrap: str, fresh_topics: FreshTopics
) -> None:
    ensure_topics(_conf(kafka_bootstrap), {fresh_topics.input: 3})
    _produce(kafka_bootstrap, fresh_topics.input, 30, partitions=3)

    records = read_all(kafka_bootstrap, fresh_topics.input)

    assert len(records) == 30
    assert {r.value for r in records} == {f"v{i}".encode() for i in range(30)}
    for record in records:
        seq = int(record.headers["seq"])
        assert record.key == f"k{seq}".encode()
        assert record.partition == seq % 3
        assert record.headers["source"] == b"test"
        assert record.timestamp_ms > 0
    for partition in range(3):
        offsets = [r.offset for r in records if r.partition == partition]
        assert offsets == list(range(10))
    assert len(read_all(kafka_bootstrap, fresh_topics.input, expected=7)) == 7


def test_read_all_of_an_empty_topic_is_empty(
    kafka_bootstrap: str, fresh_topics: FreshTopics
) -> None:
    ensure_topics(_conf(kafka_bootstrap), {fresh_topics.input: 2})
    assert read_all(kafka_bootstrap, fresh_topics.input, timeout=10) == []


def _commit(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        consumer.commit(
            offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
            asynchronous=False,
        )
    finally:
        consumer.close()


def test_offsets_and_lag_follow_a_consumer(kafka_bootstrap: str, fresh_topics: FreshTopics) -> None:
    conf = _conf(kafka_bootstrap)
    topic, group = fresh_topics.input, fresh_topics.group
    ensure_topics(conf, {topic: 2})
    _produce(kafka_bootstrap, topic, 10, partitions=2)

    assert end_offsets(conf, topic) == {0: 5, 1: 5}
    assert committed_offsets(conf, group, topic) == {}
    assert group_lag(conf, group, topic) == {0: 5, 1: 5}

    # A real subscriber consumes partition 0's records and commits what it processed.
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    seen: list[int] = []
    try:
        consumer.subscribe([topic])

        def consume_some() -> bool:
            for message in consumer.consume(num_messages=10, timeout=0.5):
                assert message.error() is None, message.error()
                offset = message.offset()
                if message.partition() == 0 and offset is not None and offset < 3:
                    seen.append(offset)
                    consumer.commit(message=message, asynchronous=False)
            return len(seen) == 3

        wait_until(consume_some, timeout=60, message=lambda: f"consumed only {seen}")
    finally:
        consumer.close()

    assert committed_offsets(conf, group, topic) == {0: 3}
    assert group_lag(conf, group, topic) == {0: 2, 1: 5}
    # Another topic's commits stay out of this topic's answer.
    assert committed_offsets(conf, group, fresh_topics.output) == {}


# ------------------------------------------------------------------------- missing tools


def _fake_tool(folder: Path, name: str, script: str) -> None:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


def test_missing_java_names_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerToolMissing) as caught:
        find_java()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("java not found: install a JDK 17+")
    assert caught.value.tool == "java"
    # start() checks before touching the data dir.
    with pytest.raises(BrokerToolMissing):
        EmbeddedBroker(tmp_path / "data", port=0).start()
    assert not (tmp_path / "data").exists()


def test_old_java_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_tool(tmp_path / "bin", "java", "echo 'openjdk version \"11.0.22\" 2024-01-16' >&2")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(BrokerToolMissing, match=r"java 11 .* too old .* JDK 17\+"):
        find_java()


def test_missing_maven_names_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_tool(tmp_path / "bin", "java", "echo 'openjdk version \"17.0.15\" 2025-04-15' >&2")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(BrokerToolMissing) as caught:
        ensure_jars(cache_dir=tmp_path / "cache")
    assert caught.value.tool == "mvn"
    assert "\n" not in str(caught.value)
    assert "apt-get install maven" in str(caught.value)
    assert not any((tmp_path / "cache").rglob("*.jar"))


def test_cached_jars_need_no_maven(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    libs = ensure_jars()  # fetched by the session broker already
    monkeypatch.setenv("PATH", str(tmp_path))
    assert ensure_jars() == libs
    assert os.path.isdir(libs)
