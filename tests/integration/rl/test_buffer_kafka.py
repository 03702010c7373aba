"""The RL buffer on the real broker: shards, commits after durability, SIGKILL recovery."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from streamplane.config import RLSettings, Settings
from streamplane.platform.kafka import admin
from streamplane.rl import metrics as tm
from streamplane.rl.buffer.manifest import SHARDS_DIR, read_manifest
from streamplane.rl.buffer.service import BufferService
from tests.rl_support.kafka_helpers import buffered_offsets, caught_up, produce_transitions
from tests.support.deadline import wait_until
from tests.support.procs import base_env
from tests.support.topics import unique_name

pytestmark = pytest.mark.kafka


def test_buffer_writes_every_transition_once_and_commits_the_manifest(
    kafka_bootstrap: str, training_settings: RLSettings
) -> None:
    topic = unique_name("rl-results")
    conf = {"bootstrap.servers": kafka_bootstrap}
    admin.ensure_topics(conf, {topic: 2})
    produce_transitions(kafka_bootstrap, topic, 1000, invalid=3)
    settings = Settings(kafka_brokers=kafka_bootstrap)
    training = training_settings.model_copy(
        update={"rl_results_topic": topic, "rl_buffer_group": unique_name("rl-buffer")}
    )
    before = tm.SKILL_EVENTS.labels("a")._value.get()
    service = BufferService(settings, training)
    service.start()
    try:
        buffer = training.buffer_dir
        wait_until(
            lambda: caught_up(buffer, kafka_bootstrap, topic),
            60,
            0.2,
            message=lambda: f"manifest at {read_manifest(buffer).next_offsets}",
        )
    finally:
        service.stop()
    assert service.error is None
    manifest = read_manifest(buffer)
    pairs = buffered_offsets(buffer)
    assert len(pairs) == len(set(pairs)) == 1000
    assert manifest.transitions_by_skill() == {"a": 500, "b": 500}
    assert sum(manifest.next_offsets.values()) == 1003
    committed = admin.committed_offsets(conf, training.rl_buffer_group, topic)
    assert committed == manifest.next_offsets
    assert tm.SKILL_EVENTS.labels("a")._value.get() == before + 500
    assert tm.BUFFER_TRANSITIONS.labels("b")._value.get() == 500
    assert tm.BUFFER_BYTES._value.get() == manifest.bytes
    assert sorted(os.listdir(buffer / SHARDS_DIR)) == sorted(s.name for s in manifest.shards)


def test_sigkill_while_writing_loses_nothing_and_duplicates_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic, group = unique_name("rl-results"), unique_name("rl-buffer")
    conf = {"bootstrap.servers": kafka_bootstrap}
    admin.ensure_topics(conf, {topic: 3})
    total = 30_000
    produce_transitions(kafka_bootstrap, topic, total)
    buffer = tmp_path / "buffer"
    env = base_env(
        {
            "KAFKA_BROKERS": kafka_bootstrap,
            "RL_RESULTS_TOPIC": topic,
            "RL_BUFFER_DIR": str(buffer),
            "RL_BUFFER_GROUP": group,
            # Small shards: the buffer is nearly always in the middle of writing one.
            "RL_BUFFER_SHARD_ROWS": "150",
            "RL_BUFFER_LINGER_S": "0.5",
        }
    )
    command = [sys.executable, "-m", "streamplane.rl.buffer.service"]
    kills = 0
    log = tmp_path / "buffer.log"
    while True:
        with log.open("ab") as out:
            proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=out, stderr=out)
        try:
            if kills == 3:
                wait_until(
                    lambda: caught_up(buffer, kafka_bootstrap, topic),
                    120,
                    0.25,
                    message=lambda: (
                        f"stuck at {read_manifest(buffer).next_offsets}\n" + log.read_text()[-3000:]
                    ),
                )
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(30) == 0
                break
            target = len(read_manifest(buffer).shards) + 5
            wait_until(
                lambda n=target: len(read_manifest(buffer).shards) >= n,
                120,
                0.02,
                message=lambda: log.read_text()[-3000:],
            )
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            kills += 1
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
    manifest = read_manifest(buffer)
    pairs = buffered_offsets(buffer)
    duplicates = [p for p, n in Counter(pairs).items() if n > 1]
    assert duplicates == []
    ends = admin.end_offsets(conf, topic)
    assert pairs == sorted((p, o) for p, end in ends.items() for o in range(end))
    assert manifest.next_offsets == ends
    assert admin.committed_offsets(conf, group, topic) == ends
    assert sorted(os.listdir(buffer / SHARDS_DIR)) == sorted(s.name for s in manifest.shards)


# Dagster 1.13 calls its own deprecated InitResourceContext.dagster_run while building a
# nested resource (StreamplaneResource holds a KafkaResource); nothing of ours to change.
@pytest.mark.filterwarnings(
    "ignore:InitResourceContext.dagster_run is deprecated:DeprecationWarning"
)
def test_rollout_job_writes_requests(kafka_bootstrap: str) -> None:
    from dagster import instance_for_test

    from streamplane.assets.rl import rl_rollout_job
    from streamplane.resources import KafkaResource, StreamplaneResource
    from streamplane.rl.transitions import parse_rollout
    from tests.support.topics import read_all

    topic = unique_name("rl-requests")
    admin.ensure_topics({"bootstrap.servers": kafka_bootstrap}, {topic: 1})
    resource = StreamplaneResource(
        kafka=KafkaResource(bootstrap_servers=kafka_bootstrap), input_topic=topic
    )
    config = {"count": 5, "skill": "walk", "episodes": 2, "epsilon": 0.2}
    with instance_for_test() as instance:
        result = rl_rollout_job.execute_in_process(
            run_config={"ops": {"write_rollout_requests": {"config": config}}},
            resources={"streamplane": resource},
            instance=instance,
        )
    assert result.success
    requests = [parse_rollout(r.value or b"") for r in read_all(kafka_bootstrap, topic, 5)]
    assert {(r.skill, r.episodes, r.epsilon) for r in requests} == {("walk", 2, 0.2)}
