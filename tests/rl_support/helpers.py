"""Filling a buffer directly (no Kafka) with episodes played in Gymnasium."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from streamplane.rl.buffer.shards import ShardWriter
from streamplane.rl.envs.rollouts import make_env, run_episode
from streamplane.rl.policy import Policy, RandomPolicy
from streamplane.rl.transitions import Transition

ENV = "CartPole-v1"


def transition_row(t: Transition, partition: int, offset: int) -> dict[str, Any]:
    """A buffer row for ``t`` as if it had been read at ``partition``/``offset``."""
    return {**asdict(t), "src_partition": partition, "src_offset": offset, "timestamp_ms": 0}


def play(policy: Policy, episodes: int, seed: int, skill: str = "default") -> list[Transition]:
    """Every transition of ``episodes`` CartPole episodes."""
    env = make_env(ENV, frozenset({ENV}))
    try:
        out: list[Transition] = []
        for e in range(episodes):
            out.extend(
                run_episode(env, ENV, policy, skill=skill, episode_id=f"{seed}-{e}", seed=seed + e)
            )
        return out
    finally:
        env.close()


class DirectBuffer:
    """A buffer directory fed without Kafka, offsets counted on partition 0."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer = ShardWriter(path, "direct", 1 << 30)
        self.writer.open()
        self.offset = 0

    def add(self, transitions: list[Transition]) -> None:
        rows = []
        for t in transitions:
            rows.append(transition_row(t, 0, self.offset))
            self.offset += 1
        self.writer.write_shard(rows, {0: self.offset})


def random_buffer(path: Path, episodes: int = 20, seed: int = 0) -> DirectBuffer:
    """A buffer holding ``episodes`` random-policy episodes."""
    buffer = DirectBuffer(path)
    buffer.add(play(RandomPolicy(2), episodes, seed))
    return buffer
