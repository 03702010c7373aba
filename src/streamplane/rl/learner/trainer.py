r"""The trainer: DQN in JAX + optax, learning a policy from the replay buffer.

This is the program Slurm runs::

    python -m streamplane.rl.learner.trainer --buffer DIR --out DIR \
        [--skill S] [--algo dqn] [--steps N] [--result FILE] ...

It reads the complete shards of the buffer (optionally one skill's transitions), starts
from the newest checkpoint of the same line when there is one (so each round of the
loop continues from the last; ``--init best`` takes the best-evaluated one), runs
``--steps`` gradient steps of Double DQN with a Huber loss, a cosine-decayed learning
rate and a Polyak-averaged target network, evaluates the greedy policy in
Gymnasium, and writes a new checkpoint version with its metrics JSON (loss, evaluation
mean return, steps, wall time). ``--result`` also writes the metrics to that file, which
is how the training API learns a job's outcome. Exit status 0 on success, 2 on bad
arguments or an empty buffer, 1 on any other failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from streamplane.rl.buffer.manifest import read_manifest
from streamplane.rl.checkpoints import Checkpoint, CheckpointStore
from streamplane.rl.exceptions import CheckpointError, TrainingError
from streamplane.rl.learner.config import ALGORITHMS, TrainConfig
from streamplane.rl.learner.dataset import load_dataset
from streamplane.rl.policy import Layers, QPolicy
from streamplane.rl.transitions import DEFAULT_ENV, check_skill

logger = logging.getLogger(__name__)


def train(config: TrainConfig) -> dict[str, Any]:
    """Run one training job end to end and return its metrics (also written to disk)."""
    from streamplane.rl.envs.rollouts import env_shape, evaluate, make_env
    from streamplane.rl.learner import dqn

    started = time.monotonic()
    if config.algo not in ALGORITHMS:
        raise TrainingError(f"unknown algorithm {config.algo!r}; known: {ALGORITHMS}")
    manifest = read_manifest(config.buffer)
    data = load_dataset(config)
    env = make_env(config.env, frozenset({config.env}))
    try:
        obs_size, n_actions = env_shape(env)
        store = CheckpointStore(config.out)
        init_layers, init_version = _initial_layers(store, config, obs_size, n_actions)
        outcome = dqn.fit(
            data,
            dqn.DQNParams(
                steps=config.steps,
                batch_size=config.batch_size,
                learning_rate=config.learning_rate,
                gamma=config.gamma,
                target_tau=config.target_tau,
                lr_decay=config.lr_decay,
                hidden=config.hidden,
                layers=config.layers,
                seed=config.seed,
            ),
            obs_size=obs_size,
            n_actions=n_actions,
            init=init_layers,
        )
        returns = evaluate(
            env,
            config.env,
            QPolicy(outcome.layers, 0),
            config.eval_episodes,
            seed=1_000_000 + config.seed,
        )
    finally:
        env.close()
    metrics: dict[str, Any] = {
        "algo": config.algo,
        "env": config.env,
        "skill": config.skill,
        "steps": config.steps,
        "loss": outcome.final_loss,
        "loss_curve": outcome.loss_curve,
        "eval_episodes": config.eval_episodes,
        "eval_mean_return": float(np.mean(returns)) if returns else None,
        "eval_returns": returns,
        "transitions": len(data),
        "episodes_in_buffer": data.episodes,
        "buffer_appended_total": manifest.appended_total,
        "initialized_from": init_version,
        "hyperparameters": {
            k: v for k, v in asdict(config).items() if k not in ("buffer", "out", "result")
        },
    }
    metrics["wall_time_s"] = round(time.monotonic() - started, 3)
    checkpoint = store.save(
        config.line,
        outcome.layers,
        {
            "algo": config.algo,
            "env": config.env,
            "obs_size": obs_size,
            "n_actions": n_actions,
            "hidden": config.hidden,
            "layers": config.layers,
            "created_unix": time.time(),
        },
        metrics,
    )
    result = {**metrics, "line": checkpoint.line, "version": checkpoint.version}
    result["checkpoint"] = str(checkpoint.path)
    if config.result is not None:
        _write_result(config.result, result)
    return result


def _initial_layers(
    store: CheckpointStore, config: TrainConfig, obs_size: int, n_actions: int
) -> tuple[Layers | None, int | None]:
    """The checkpoint to continue from, if wanted and of the same shape.

    ``best``: the version with the highest evaluation mean return (so one bad round, a
    DQN collapse say, does not carry into the next); ``latest``: the newest.
    """
    if config.init == "none":
        return None, None
    latest = store.latest(config.line) if config.init == "latest" else _best(store, config.line)
    if latest is None:
        return None, None
    layers = latest.layers()
    shape_ok = (
        len(layers) == config.layers + 1
        and layers[0][0].shape == (obs_size, config.hidden)
        and layers[-1][1].shape == (n_actions,)
    )
    if not shape_ok:
        logger.warning("newest checkpoint has another shape; starting fresh")
        return None, None
    return layers, latest.version


def _best(store: CheckpointStore, line: str) -> Checkpoint | None:
    """The version of ``line`` whose metrics show the highest evaluation mean return."""
    best: tuple[float, int] | None = None
    for version in store.versions(line):
        try:
            score = store.get(line, version).metrics().get("eval_mean_return")
        except CheckpointError:
            continue
        if isinstance(score, int | float) and (best is None or (score, version) >= best):
            best = (float(score), version)
    return store.get(line, best[1]) if best is not None else store.latest(line)


def _write_result(path: Path, result: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, path)


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _skill(text: str) -> str:
    try:
        return check_skill(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    """The command line: one flag per TrainConfig field."""
    parser = argparse.ArgumentParser(
        prog="python -m streamplane.rl.learner.trainer",
        description="Learn a policy from the RL replay buffer and write a checkpoint.",
    )
    parser.add_argument("--buffer", type=Path, required=True, help="RL_BUFFER_DIR to read")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint root (RL_POLICY_DIR)")
    parser.add_argument("--skill", type=_skill, default=None, help="train on one skill only")
    parser.add_argument("--algo", choices=ALGORITHMS, default="dqn")
    parser.add_argument("--env", default=DEFAULT_ENV, help="Gymnasium id (default CartPole-v1)")
    parser.add_argument("--steps", type=_positive(int), default=TrainConfig.steps)
    parser.add_argument("--batch-size", type=_positive(int), default=TrainConfig.batch_size)
    parser.add_argument("--learning-rate", type=_positive(float), default=TrainConfig.learning_rate)
    parser.add_argument("--gamma", type=float, default=TrainConfig.gamma)
    parser.add_argument("--target-tau", type=_positive(float), default=TrainConfig.target_tau)
    parser.add_argument("--hidden", type=_positive(int), default=TrainConfig.hidden)
    parser.add_argument("--layers", type=_positive(int), default=TrainConfig.layers)
    parser.add_argument("--eval-episodes", type=_positive(int), default=TrainConfig.eval_episodes)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument(
        "--init",
        choices=("best", "latest", "none"),
        default=TrainConfig.init,
        help="continue from the newest (default) or best-evaluated checkpoint, or start fresh",
    )
    parser.add_argument(
        "--lr-decay",
        choices=("cosine", "none"),
        default=TrainConfig.lr_decay,
        help="cosine: the learning rate falls to a tenth over the run (default)",
    )
    parser.add_argument("--result", type=Path, default=None, help="also write metrics here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m streamplane.rl.learner.trainer``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    if not 0.0 <= args.gamma < 1.0:
        print("trainer: --gamma must be in [0, 1)", file=sys.stderr)
        return 2
    config = TrainConfig(**vars(args))
    try:
        result = train(config)
    except TrainingError as exc:
        print(f"trainer: {exc}", file=sys.stderr)
        return 2
    summary = {k: v for k, v in result.items() if k not in ("loss_curve", "eval_returns")}
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
