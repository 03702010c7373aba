"""Policies that env runners act with: the random policy and a greedy Q-network.

Acting needs only a forward pass of a small MLP, so it runs in numpy: env runners never
import JAX (which takes seconds to import and holds threads), while the trainer builds
the same network in JAX. Both compute ``q = relu(... relu(obs @ w0 + b0) ...) @ wn + bn``;
``tests/unit/rl/test_records.py`` checks that they agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from streamplane.rl.transitions import RANDOM_POLICY_VERSION

FloatArray = npt.NDArray[np.float32]
#: An MLP as a list of (weights, bias) pairs, input to output.
Layers = list[tuple[FloatArray, FloatArray]]


class Policy(Protocol):
    """Chooses an action for one observation."""

    @property
    def version(self) -> int:
        """The checkpoint version (0 for the random policy)."""
        ...

    def act(self, obs: FloatArray, rng: np.random.Generator) -> int:
        """The action to take."""
        ...


def q_values(layers: Layers, obs: FloatArray) -> FloatArray:
    """Forward pass: Q-values for a batch (or one) of observations."""
    x = obs.astype(np.float32, copy=False)
    for index, (w, b) in enumerate(layers):
        x = x @ w + b
        if index < len(layers) - 1:
            x = np.maximum(x, 0.0)
    return x


@dataclass(frozen=True)
class RandomPolicy:
    """Uniform over ``n_actions``: the policy before any checkpoint exists."""

    n_actions: int

    @property
    def version(self) -> int:
        """Always 0."""
        return RANDOM_POLICY_VERSION

    def act(self, obs: FloatArray, rng: np.random.Generator) -> int:
        """A uniformly random action."""
        return int(rng.integers(self.n_actions))


@dataclass(frozen=True)
class QPolicy:
    """Epsilon-greedy over a Q-network's values."""

    layers: Layers
    checkpoint_version: int
    epsilon: float = 0.0

    @property
    def version(self) -> int:
        """The checkpoint version the weights came from."""
        return self.checkpoint_version

    @property
    def n_actions(self) -> int:
        """Number of actions (width of the output layer)."""
        return int(self.layers[-1][1].shape[0])

    def with_epsilon(self, epsilon: float) -> QPolicy:
        """The same network with another exploration rate."""
        return QPolicy(self.layers, self.checkpoint_version, epsilon)

    def act(self, obs: FloatArray, rng: np.random.Generator) -> int:
        """Argmax of the Q-values, or a random action with probability ``epsilon``."""
        if self.epsilon > 0.0 and rng.random() < self.epsilon:
            return int(rng.integers(self.n_actions))
        return int(np.argmax(q_values(self.layers, obs)))
