"""What one training run is asked to do: the trainer's flags as one frozen record."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from streamplane.rl.checkpoints import ALL_SKILLS
from streamplane.rl.transitions import DEFAULT_ENV

ALGORITHMS = ("dqn",)
Algorithm = Literal["dqn"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; the CLI flags map one-to-one onto it."""

    buffer: Path
    out: Path
    skill: str | None = None
    algo: Algorithm = "dqn"
    env: str = DEFAULT_ENV
    # 4000 Adam steps of 256 transitions revisit a 20k-transition buffer ~50 times: enough
    # to fit it, and about 10 s of CPU on a laptop core once JIT-compiled.
    steps: int = 4000
    batch_size: int = 256
    learning_rate: float = 1e-3
    # An effective horizon of ~50 steps is plenty to balance a pole, and keeps Q-values
    # near 50 rather than 100: measured on CartPole-v1, 0.99 collapsed twice after
    # reaching 500 (at ~45k environment steps), 0.98 held 450-500 up to 190k.
    gamma: float = 0.98
    # Polyak rate of the target network: an effective horizon of ~200 steps.
    target_tau: float = 0.005
    hidden: int = 128
    layers: int = 2
    eval_episodes: int = 10
    seed: int = 0
    init: Literal["best", "latest", "none"] = "latest"
    lr_decay: Literal["cosine", "none"] = "cosine"
    result: Path | None = None

    @property
    def line(self) -> str:
        """The checkpoint line: the skill, or ``all``."""
        return self.skill if self.skill is not None else ALL_SKILLS
