"""Double DQN on a fixed dataset, in JAX with optax.

The network is the MLP that :mod:`streamplane.rl.policy` evaluates in
numpy: ReLU hidden layers, linear output, one Q-value per action. Gradients come from
``jax.grad``; Adam with global-norm clipping from optax; the target network follows the
online one by Polyak averaging.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax  # type: ignore[import-untyped]  # optax ships no py.typed

from streamplane.rl.learner.dataset import Dataset
from streamplane.rl.policy import Layers

Params = list[tuple[jax.Array, jax.Array]]
Carry = tuple[Params, Params, Any]

# Gradients above this global norm are scaled down: early TD errors on an untrained
# network can be large, and one huge step can wreck a warm-started policy.
MAX_GRAD_NORM = 10.0
# Steps per jitted chunk; the reported loss curve has one point (the mean) per chunk, and
# the step count is rounded up to a whole number of chunks.
LOSS_WINDOW = 100


@dataclass(frozen=True)
class DQNParams:
    """Hyperparameters of one fit."""

    steps: int
    batch_size: int
    learning_rate: float
    gamma: float
    target_tau: float
    lr_decay: str
    hidden: int
    layers: int
    seed: int


@dataclass(frozen=True)
class FitOutcome:
    """The trained network and how its loss went."""

    layers: Layers
    final_loss: float
    loss_curve: list[float]


def init_params(key: jax.Array, sizes: list[int]) -> Params:
    """LeCun-uniform weights and zero biases for an MLP with these layer sizes."""
    params: Params = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        key, sub = jax.random.split(key)
        bound = float(np.sqrt(3.0 / fan_in))
        w = jax.random.uniform(sub, (fan_in, fan_out), minval=-bound, maxval=bound)
        params.append((w, jnp.zeros((fan_out,), dtype=jnp.float32)))
    return params


def q_network(params: Params, obs: jax.Array) -> jax.Array:
    """Q-values of a batch of observations (same function as policy.q_values)."""
    x = obs
    for index, (w, b) in enumerate(params):
        x = x @ w + b
        if index < len(params) - 1:
            x = jax.nn.relu(x)
    return x


def fit(
    data: Dataset,
    hp: DQNParams,
    *,
    obs_size: int,
    n_actions: int,
    init: Layers | None = None,
) -> FitOutcome:
    """Train on ``data`` for ``hp.steps`` minibatch steps; start from ``init`` if given."""
    key = jax.random.PRNGKey(hp.seed)
    if init is not None:
        params: Params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in init]
    else:
        key, sub = jax.random.split(key)
        params = init_params(sub, [obs_size] + [hp.hidden] * hp.layers + [n_actions])
    target = params
    learning_rate: Any = hp.learning_rate
    if hp.lr_decay == "cosine":
        # Falling to a tenth by the end settles each round's network instead of leaving
        # it mid-stride, which is when DQN's value estimates tend to blow up.
        learning_rate = optax.cosine_decay_schedule(hp.learning_rate, hp.steps, alpha=0.1)
    optimizer = optax.chain(optax.clip_by_global_norm(MAX_GRAD_NORM), optax.adam(learning_rate))
    opt_state = optimizer.init(params)
    arrays = (
        jnp.asarray(data.obs),
        jnp.asarray(data.actions),
        jnp.asarray(data.rewards),
        jnp.asarray(data.next_obs),
        jnp.asarray(data.terminated),
    )
    gamma, tau = hp.gamma, hp.target_tau

    def loss_fn(p: Params, t: Params, batch: tuple[jax.Array, ...]) -> jax.Array:
        obs, actions, rewards, next_obs, terminated = batch
        q = jnp.take_along_axis(q_network(p, obs), actions[:, None], axis=1)[:, 0]
        # Double DQN: the online network picks the next action, the target values it.
        next_actions = jnp.argmax(q_network(p, next_obs), axis=1)
        next_q = jnp.take_along_axis(q_network(t, next_obs), next_actions[:, None], axis=1)
        bootstrap = rewards + gamma * (1.0 - terminated) * next_q[:, 0]
        return jnp.mean(optax.huber_loss(q, jax.lax.stop_gradient(bootstrap)))

    def step(carry: Carry, k: jax.Array) -> tuple[Carry, jax.Array]:
        p, t, state = carry
        idx = jax.random.randint(k, (hp.batch_size,), 0, arrays[0].shape[0])
        batch = tuple(a[idx] for a in arrays)
        loss, grads = jax.value_and_grad(loss_fn)(p, t, batch)
        updates, state = optimizer.update(grads, state, p)
        p = optax.apply_updates(p, updates)
        t = optax.incremental_update(p, t, tau)
        return (p, t, state), loss

    # One jitted call runs a whole chunk of steps (lax.scan), so Python dispatch costs
    # once per chunk rather than once per step: ~10x faster for a network this small.
    @jax.jit
    def chunk(carry: Carry, k: jax.Array) -> tuple[Carry, jax.Array]:
        carry, losses = jax.lax.scan(step, carry, jax.random.split(k, LOSS_WINDOW))
        return carry, jnp.mean(losses)

    carry: Carry = (params, target, opt_state)
    losses: list[float] = []
    for _ in range(max(1, -(-hp.steps // LOSS_WINDOW))):
        key, sub = jax.random.split(key)
        carry, loss = chunk(carry, sub)
        losses.append(float(loss))
    params = carry[0]
    layers: Layers = [
        (np.asarray(w, dtype=np.float32), np.asarray(b, dtype=np.float32)) for w, b in params
    ]
    return FitOutcome(layers, losses[-1] if losses else float("nan"), losses)
