"""The learning loop without Kafka or Slurm: env runner -> shard writer -> trainer program.

Each iteration writes rollout requests as work items to the real
:class:`RolloutProcessor` (which acts with the newest checkpoint), stores what it emits as
one shard, and runs the trainer program as Slurm would (``python -m ...trainer``).
``python -m tests.rl_support.loop --iterations 30`` prints the learning curve as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from streamplane.config import RLSettings, Settings
from streamplane.platform.records import Records
from streamplane.platform.worker.processor import ProcessorContext, WorkItem
from streamplane.rl.buffer.shards import ShardWriter
from streamplane.rl.envs.env_runner import RolloutProcessor
from streamplane.rl.transitions import RolloutRequest


@dataclass(frozen=True)
class Iteration:
    """One round of the loop."""

    index: int
    env_steps: int
    episodes: int
    rollout_mean_return: float
    eval_mean_return: float
    loss: float
    version: int
    train_wall_s: float


def run_loop(
    root: Path,
    iterations: int,
    episodes_per_iteration: int = 20,
    steps: int = 3000,
    stop_at: float | None = None,
    min_iterations: int = 1,
    learning_rate: float = 1e-3,
    extra_args: tuple[str, ...] = (),
) -> Iterator[Iteration]:
    """Run the loop under ``root``.

    Stops early, after at least ``min_iterations``, once the trainer's evaluation reaches
    ``stop_at``.
    """
    training = RLSettings(
        rl_results_topic="results",
        rl_buffer_dir=root / "buffer",
        rl_policy_dir=root / "policies",
    )
    training.buffer_dir.mkdir(parents=True, exist_ok=True)
    writer = ShardWriter(training.buffer_dir, "results", 1 << 34)
    writer.open()
    processor = RolloutProcessor(Settings(), training)
    processor.open(ProcessorContext("out", "dlq", Settings()))
    offset, env_steps = 0, 0
    try:
        for index in range(iterations):
            # Exploration decays as the policy improves: 0.5, 0.35, 0.25, ... down to 0.05.
            epsilon = max(0.05, 0.5 * 0.7**index)
            request = RolloutRequest(kind="rl.rollout", episodes=1, seed=0, epsilon=epsilon)
            values = [
                request.model_copy(update={"seed": 1000 * index + e}).to_json()
                for e in range(episodes_per_iteration)
            ]
            offsets = list(range(offset, offset + len(values)))
            records = Records(
                "requests", 0, offsets, [0] * len(values), [None] * len(values), values
            )
            offset += len(values)
            emitted: list[tuple[str, bytes]] = []
            processor.process(
                WorkItem(f"t{index}", "default", 1, records),
                lambda topic, _key, value, _headers, out=emitted: out.append((topic, value)),
            )
            assert {topic for topic, _ in emitted} == {"results"}, emitted[:3]
            rows = [
                {
                    **orjson.loads(v),
                    "src_partition": 0,
                    "src_offset": env_steps + i,
                    "timestamp_ms": 0,
                }
                for i, (_, v) in enumerate(emitted)
            ]
            env_steps += len(rows)
            writer.write_shard(rows, {0: env_steps})
            returns: dict[str, float] = {}
            for row in rows:
                returns[row["episode_id"]] = returns.get(row["episode_id"], 0.0) + row["reward"]
            result = train(training, steps, index, learning_rate, extra_args)
            yield Iteration(
                index=index,
                env_steps=env_steps,
                episodes=len(returns),
                rollout_mean_return=sum(returns.values()) / len(returns),
                eval_mean_return=float(result["eval_mean_return"]),
                loss=float(result["loss"]),
                version=int(result["version"]),
                train_wall_s=float(result["wall_time_s"]),
            )
            good = stop_at is not None and result["eval_mean_return"] >= stop_at
            if good and index + 1 >= min_iterations:
                return
    finally:
        processor.close()


def train(
    training: RLSettings,
    steps: int,
    seed: int,
    learning_rate: float = 1e-3,
    extra_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One run of the trainer program; returns its summary line."""
    argv = [
        sys.executable, "-m", "streamplane.rl.learner.trainer",
        "--buffer", str(training.buffer_dir), "--out", str(training.policy_dir),
        "--steps", str(steps), "--seed", str(seed), "--eval-episodes", "10",
        "--learning-rate", str(learning_rate), *extra_args,
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise AssertionError(f"trainer failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Print the learning curve of a longer run as JSON lines."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("trainer_args", nargs="*", help="more trainer flags, after --")
    args = parser.parse_args()
    started = time.monotonic()
    for it in run_loop(
        args.root,
        args.iterations,
        args.episodes,
        args.steps,
        learning_rate=args.learning_rate,
        extra_args=tuple(args.trainer_args),
    ):
        line = {**it.__dict__, "wall_s": round(time.monotonic() - started, 1)}
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
