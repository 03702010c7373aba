"""The trainer program: a short fit writes a checkpoint and metrics; bad input exits 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from streamplane.rl.checkpoints import ALL_SKILLS, CheckpointStore
from streamplane.rl.learner.trainer import main
from tests.rl_support.helpers import random_buffer


def test_trainer_program_writes_a_versioned_checkpoint(rl_dirs: dict[str, Path]) -> None:
    random_buffer(rl_dirs["buffer"], episodes=10)
    result = rl_dirs["training"] / "result.json"
    argv = [
        sys.executable, "-m", "streamplane.rl.learner.trainer",
        "--buffer", str(rl_dirs["buffer"]), "--out", str(rl_dirs["policies"]),
        "--steps", "200", "--eval-episodes", "2", "--result", str(result),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["version"] == 1
    checkpoint = CheckpointStore(rl_dirs["policies"]).latest(ALL_SKILLS)
    assert checkpoint is not None
    metrics = checkpoint.metrics()
    for key in ("loss", "eval_mean_return", "steps", "wall_time_s", "transitions"):
        assert key in metrics
    assert metrics["steps"] == 200
    assert len(metrics["loss_curve"]) == 2
    assert json.loads(result.read_text())["checkpoint"] == str(checkpoint.path)
    assert checkpoint.meta["obs_size"] == 4
    assert checkpoint.meta["n_actions"] == 2


def test_second_run_starts_from_the_newest_checkpoint(rl_dirs: dict[str, Path]) -> None:
    random_buffer(rl_dirs["buffer"], episodes=5)
    args = ["--buffer", str(rl_dirs["buffer"]), "--out", str(rl_dirs["policies"]),
            "--steps", "100", "--eval-episodes", "1"]  # fmt: skip
    assert main(args) == 0
    assert main(args) == 0
    second = CheckpointStore(rl_dirs["policies"]).get(ALL_SKILLS, 2)
    assert second.metrics()["initialized_from"] == 1


def test_empty_buffer_or_unknown_skill_exits_2(rl_dirs: dict[str, Path], capsys: object) -> None:
    base = ["--buffer", str(rl_dirs["buffer"]), "--out", str(rl_dirs["policies"]), "--steps", "10"]
    assert main(base) == 2
    random_buffer(rl_dirs["buffer"], episodes=2)
    assert main([*base, "--skill", "nobody"]) == 2
    assert main([*base, "--gamma", "1.5"]) == 2
    del capsys


def test_repeated_episodes_are_trained_on_once(rl_dirs: dict[str, Path]) -> None:
    from streamplane.rl.learner.config import TrainConfig
    from streamplane.rl.learner.dataset import load_dataset
    from streamplane.rl.policy import RandomPolicy
    from tests.rl_support.helpers import DirectBuffer, play

    buffer = DirectBuffer(rl_dirs["buffer"])
    episode = play(RandomPolicy(2), 1, seed=3)
    buffer.add(episode)
    buffer.add(episode)  # a redelivered request replayed it
    data = load_dataset(TrainConfig(buffer=rl_dirs["buffer"], out=rl_dirs["policies"]))
    assert len(data) == len(episode)
    assert data.episodes == 1


def test_training_continues_from_the_newest_or_best_checkpoint(rl_dirs: dict[str, Path]) -> None:
    import numpy as np

    from streamplane.rl.learner.config import TrainConfig
    from streamplane.rl.learner.trainer import _initial_layers

    store = CheckpointStore(rl_dirs["policies"])
    layers = [(np.zeros((4, 128), np.float32), np.zeros(128, np.float32)),
              (np.zeros((128, 128), np.float32), np.zeros(128, np.float32)),
              (np.zeros((128, 2), np.float32), np.zeros(2, np.float32))]  # fmt: skip
    for score in (50.0, 480.0, 90.0):
        store.save(ALL_SKILLS, layers, {}, {"eval_mean_return": score})
    best = TrainConfig(buffer=rl_dirs["buffer"], out=rl_dirs["policies"], init="best")
    assert _initial_layers(store, best, 4, 2)[1] == 2
    latest = TrainConfig(buffer=rl_dirs["buffer"], out=rl_dirs["policies"])
    assert _initial_layers(store, latest, 4, 2)[1] == 3
    other_shape = TrainConfig(buffer=rl_dirs["buffer"], out=rl_dirs["policies"], hidden=64)
    assert _initial_layers(store, other_shape, 4, 2) == (None, None)
