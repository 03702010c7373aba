"""The loop learns: rollouts -> buffer -> train -> new policy, until CartPole returns >= 100."""

from __future__ import annotations

from pathlib import Path

from streamplane.rl.checkpoints import ALL_SKILLS, CheckpointStore
from streamplane.rl.envs.rollouts import evaluate, make_env
from tests.rl_support.loop import run_loop

# A random policy averages about 22 on CartPole-v1; 100 needs a policy that has learned.
TARGET = 100.0


def test_the_loop_learns_cartpole(tmp_path: Path) -> None:
    # The trainer's own 10-episode evaluation stops the loop a margin above the target,
    # then a fresh 20-episode evaluation on unseen seeds decides.
    curve = list(run_loop(tmp_path, iterations=10, stop_at=TARGET * 1.5, min_iterations=3))
    print("learning curve:", [(i.env_steps, round(i.eval_mean_return, 1)) for i in curve])
    assert curve[-1].eval_mean_return >= TARGET * 1.5, curve
    checkpoint = CheckpointStore(tmp_path / "policies").latest(ALL_SKILLS)
    assert checkpoint is not None
    assert checkpoint.version == len(curve)
    env = make_env("CartPole-v1", frozenset({"CartPole-v1"}))
    try:
        returns = evaluate(env, "CartPole-v1", checkpoint.policy(), 20, seed=5_000_000)
    finally:
        env.close()
    assert sum(returns) / len(returns) >= TARGET, returns
    # Later rollouts acted with the learned policies, not at random (about 22).
    assert max(i.rollout_mean_return for i in curve[1:]) > 2 * curve[0].rollout_mean_return
