"""Writing transitions to a real topic and checking the buffer against it."""

from __future__ import annotations

from pathlib import Path

import orjson
from confluent_kafka import Producer

from streamplane.platform.kafka import admin
from streamplane.rl.buffer.manifest import load_transitions, read_manifest


def produce_transitions(
    bootstrap: str, topic: str, count: int, skills: tuple[str, ...] = ("a", "b"), invalid: int = 0
) -> None:
    """``count`` valid transitions (skills round-robin) plus ``invalid`` junk records."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all"})
    for i in range(count):
        value = orjson.dumps(
            {
                "env": "CartPole-v1", "skill": skills[i % len(skills)], "policy_version": 0,
                "episode_id": f"ep{i // 20}", "step": i % 20, "obs": [0.0, 0.1, 0.2, 0.3],
                "action": i % 2, "reward": 1.0, "next_obs": [0.1, 0.2, 0.3, 0.4],
                "terminated": i % 20 == 19, "truncated": False,
            }
        )  # fmt: skip
        producer.produce(topic, value, key=f"ep{i // 20}".encode())
        if i % 1000 == 0:
            producer.poll(0)
    for i in range(invalid):
        producer.produce(topic, b"not a transition %d" % i)
    assert producer.flush(60) == 0


def buffered_offsets(buffer: Path) -> list[tuple[int, int]]:
    """(partition, offset) of every transition in the complete shards, sorted."""
    table = load_transitions(buffer)
    pairs = zip(
        table.column("src_partition").to_pylist(),
        table.column("src_offset").to_pylist(),
        strict=True,
    )
    return sorted(pairs)


def caught_up(buffer: Path, bootstrap: str, topic: str) -> bool:
    """Whether the manifest's offsets have reached the topic's end offsets."""
    ends = admin.end_offsets({"bootstrap.servers": bootstrap}, topic)
    positions = read_manifest(buffer).next_offsets
    return all(positions.get(p, 0) >= end for p, end in ends.items())
