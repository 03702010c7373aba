"""Running episodes in Gymnasium: a rollout request in, transitions out.

Kept apart from the worker seam (``env_runner.py``) so that it can be driven directly:
by the evaluation of a policy, by tests, by the Dagster evaluation asset. Gymnasium is
imported here and only here.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from streamplane.rl.exceptions import CheckpointError, RolloutRequestError
from streamplane.rl.policy import FloatArray, Policy, RandomPolicy
from streamplane.rl.transitions import Transition


def make_env(env_id: str, allowed: frozenset[str]) -> gym.Env[FloatArray, np.int64]:
    """Build ``env_id`` if it is allowed and has a vector observation and discrete actions.

    Raises:
        RolloutRequestError: the id is not allowed, unknown, or of an unsupported shape.
    """
    if env_id not in allowed:
        raise RolloutRequestError(f"env {env_id!r} is not allowed (allowed: {sorted(allowed)})")
    try:
        env = gym.make(env_id)
    except gym.error.Error as exc:
        raise RolloutRequestError(f"cannot build env {env_id!r}: {exc}") from exc
    if not isinstance(env.action_space, gym.spaces.Discrete) or not isinstance(
        env.observation_space, gym.spaces.Box
    ):
        env.close()
        raise RolloutRequestError(f"env {env_id!r} needs Box observations and Discrete actions")
    return env


def env_shape(env: gym.Env[FloatArray, np.int64]) -> tuple[int, int]:
    """(observation size, number of actions) of a Box/Discrete environment."""
    space = env.action_space
    assert isinstance(space, gym.spaces.Discrete)
    obs_shape = env.observation_space.shape or (1,)
    return int(np.prod(obs_shape)), int(space.n)


def check_fits(policy: Policy, env_id: str, env: gym.Env[FloatArray, np.int64]) -> None:
    """Raise CheckpointError if ``policy``'s network does not fit ``env``."""
    if isinstance(policy, RandomPolicy):
        return
    layers = getattr(policy, "layers", None)
    if layers is None:
        return
    obs_size, n_actions = env_shape(env)
    if layers[0][0].shape[0] != obs_size or layers[-1][1].shape[0] != n_actions:
        raise CheckpointError(
            f"policy v{policy.version} maps {layers[0][0].shape[0]} inputs to "
            f"{layers[-1][1].shape[0]} actions; {env_id} has {obs_size} and {n_actions}"
        )


def default_seed(*parts: object) -> int:
    """A stable 31-bit seed from a record's identity, so a redelivery replays its episodes."""
    return zlib.crc32("/".join(map(str, parts)).encode()) & 0x7FFFFFFF


@dataclass(frozen=True)
class EpisodeResult:
    """What one episode returned."""

    episode_id: str
    steps: int
    total_reward: float


def run_episode(
    env: gym.Env[FloatArray, np.int64],
    env_id: str,
    policy: Policy,
    *,
    skill: str,
    episode_id: str,
    seed: int,
) -> Iterator[Transition]:
    """Play one episode and yield each step's transition (seeded: replays are identical)."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    step = 0
    while True:
        action = policy.act(np.asarray(obs, dtype=np.float32), rng)
        next_obs, reward, terminated, truncated, _ = env.step(np.int64(action))
        yield Transition(
            env=env_id,
            skill=skill,
            policy_version=policy.version,
            episode_id=episode_id,
            step=step,
            obs=np.asarray(obs, dtype=np.float32).ravel().tolist(),
            action=action,
            reward=float(reward),
            next_obs=np.asarray(next_obs, dtype=np.float32).ravel().tolist(),
            terminated=bool(terminated),
            truncated=bool(truncated),
        )
        step += 1
        if terminated or truncated:
            return
        obs = next_obs


def evaluate(
    env: gym.Env[FloatArray, np.int64], env_id: str, policy: Policy, episodes: int, seed: int
) -> list[float]:
    """Returns of ``episodes`` episodes played with ``policy`` (seeds seed, seed+1, ...)."""
    returns: list[float] = []
    for index in range(episodes):
        total = 0.0
        for transition in run_episode(
            env, env_id, policy, skill="eval", episode_id=f"eval-{index}", seed=seed + index
        ):
            total += transition.reward
        returns.append(total)
    return returns
