"""The RL application's section: replay buffer, checkpoints, Slurm and the training API."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from streamplane.config.base import Section
from streamplane.exceptions import ConfigError

#: Environments an env runner may build. ``gymnasium.make`` imports the module named in
#: an id of the form ``module:Env-v0``, so ids from records are checked against this list.
DEFAULT_ENVS = "CartPole-v1,Acrobot-v1,MountainCar-v0"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class RLSettings(Section):
    """The RL application's configuration: buffer, checkpoints, Slurm and the training API.

    The plane never reads this section; the RL application does.
    """

    rl_results_topic: str | None = Field(None, description="Topic of RL transitions")
    rl_buffer_dir: Path | None = Field(None, description="Folder of the replay buffer")
    rl_policy_dir: Path | None = Field(
        None, description="Folder of policy checkpoints; default <RL_BUFFER_DIR>/policies"
    )
    rl_training_dir: Path | None = Field(
        None, description="Folder of training tasks (job scripts, logs); <RL_BUFFER_DIR>/training"
    )
    rl_buffer_group: str = Field("streamplane-rl-buffer", min_length=1)
    # 1 GiB holds ~5M CartPole transitions (~200 B each in compressed Parquet).
    rl_buffer_max_bytes: int = Field(1 << 30, ge=1024, description="Buffer retention bound")
    # A shard per 5k transitions keeps files at ~1 MB: few enough files for a trainer to
    # open quickly, small enough that a crash re-reads little.
    rl_buffer_shard_rows: int = Field(5000, ge=1, le=10_000_000)
    rl_buffer_linger_s: float = Field(5.0, gt=0, description="Longest a transition waits")
    rl_envs: str = Field(DEFAULT_ENVS, description="Gymnasium ids env runners may build")
    training_api_token: SecretStr | None = Field(
        None, description="Bearer token of POST /training/rl/start"
    )
    slurm_partition: str | None = Field(None, description="Slurm partition for trainers")
    rl_trainer_python: Path = Field(
        Path(sys.executable), description="Python that Slurm jobs run the trainer with"
    )

    @field_validator("rl_buffer_group", "slurm_partition")
    @classmethod
    def _check_name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise ValueError(f"expected letters, digits, '_', '.', '-', got {value!r}")
        return value

    @field_validator("rl_envs")
    @classmethod
    def _check_envs(cls, value: str) -> str:
        envs = [e.strip() for e in value.split(",") if e.strip()]
        bad = [e for e in envs if not re.match(r"^[A-Za-z0-9_\-/]+-v\d+$", e)]
        if not envs or bad:
            raise ValueError(f"expected Gymnasium ids like CartPole-v1, got {value!r}")
        return ",".join(envs)

    @property
    def allowed_envs(self) -> frozenset[str]:
        """The environments an env runner may build."""
        return frozenset(self.rl_envs.split(","))

    @property
    def buffer_dir(self) -> Path:
        """``RL_BUFFER_DIR``; raises ConfigError when unset."""
        if self.rl_buffer_dir is None:
            raise ConfigError("RL_BUFFER_DIR", "not set: the RL buffer needs a folder")
        return self.rl_buffer_dir

    @property
    def results_topic(self) -> str:
        """``RL_RESULTS_TOPIC``; raises ConfigError when unset."""
        if not self.rl_results_topic:
            raise ConfigError("RL_RESULTS_TOPIC", "not set: RL transitions need a topic")
        return self.rl_results_topic

    @property
    def policy_dir(self) -> Path:
        """Where checkpoints live: ``RL_POLICY_DIR``, else ``<RL_BUFFER_DIR>/policies``."""
        if self.rl_policy_dir is not None:
            return self.rl_policy_dir
        if self.rl_buffer_dir is None:
            raise ConfigError("RL_POLICY_DIR", "not set, and no RL_BUFFER_DIR to default from")
        return self.rl_buffer_dir / "policies"

    @property
    def training_dir(self) -> Path:
        """Where training tasks live: ``RL_TRAINING_DIR``, else ``<RL_BUFFER_DIR>/training``."""
        if self.rl_training_dir is not None:
            return self.rl_training_dir
        if self.rl_buffer_dir is None:
            raise ConfigError("RL_TRAINING_DIR", "not set, and no RL_BUFFER_DIR to default from")
        return self.rl_buffer_dir / "training"
