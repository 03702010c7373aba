"""The embedded Kafka broker on a real JVM: restart, foreground command, early exit, jar cache."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from streamplane import processes
from streamplane.dev.broker import EmbeddedBroker, ensure_jars
from streamplane.platform.kafka.admin import committed_offsets, ensure_topics, topic_partitions
from streamplane.platform.kafka.exceptions import BrokerStartError
from tests.support.deadline import wait_until
from tests.support.topics import read_all, unique_name

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
        "from streamplane.dev.broker import run_broker; "
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


def test_a_second_broker_on_a_data_dir_in_use_fails_naming_the_lock(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # On the same port the first broker answers with the same cluster id, so a check of
    # the answer alone would report the second as ready while the first serves.
    with EmbeddedBroker(tmp_path / "shared", port=0) as first:
        second = EmbeddedBroker(tmp_path / "shared", port=first.port)
        with pytest.raises(BrokerStartError, match=rf"is in use: .*\(pid {first.pid}\)"):
            second.start(timeout=120)
        assert not second.is_running
        ensure_topics(_conf(first.bootstrap), {unique_name("still-first"): 1})


def test_sigkill_of_the_broker_command_takes_its_jvm_along(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "orphan"
    argv = processes.streamplane_argv("broker", "--data-dir", str(data_dir), "--port", "0")
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as wrapper:
        assert wrapper.stdout is not None
        line = wrapper.stdout.readline()
        assert line.startswith("bootstrap: "), line
        (jvm,) = psutil.Process(wrapper.pid).children()
        wrapper.kill()
        wrapper.wait(timeout=30)
    _, alive = psutil.wait_procs([jvm], timeout=60)
    assert not alive, f"the JVM {jvm.pid} outlived its wrapper"
    # Its lock went with it: the data dir starts again, topics and all.
    with EmbeddedBroker(data_dir, port=0) as again:
        ensure_topics(_conf(again.bootstrap), {unique_name("after-orphan"): 1})


def test_cached_jars_need_no_maven(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    libs = ensure_jars()  # fetched by the session broker already
    monkeypatch.setenv("PATH", str(tmp_path))
    assert ensure_jars() == libs
    assert os.path.isdir(libs)
