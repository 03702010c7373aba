"""The training API's request and response bodies, validated by pydantic.

Every model forbids unknown fields and bounds every number, so a request that names an
unknown algorithm, asks for negative or huge resources, or smuggles shell text into a
string field is refused with 422 before anything reaches Slurm. Strings that end up in
a command line are matched against narrow patterns (a skill is a plain word; the
environment must be on the allowlist).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from streamplane.rl.slurm.jobs import JobState
from streamplane.rl.transitions import DEFAULT_ENV, Skill


class Resources(BaseModel):
    """What the Slurm job asks for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpus: int = Field(default=1, ge=1, le=256, description="CPUs for the trainer (--cpus-per-task)")
    gpus: int = Field(default=0, ge=0, le=16, description="GPUs (--gres=gpu:N)")
    memory_mb: int = Field(default=2048, ge=256, le=1_048_576, description="Memory in MiB (--mem)")
    time_limit_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60, description="--time")


class Hyperparameters(BaseModel):
    """DQN hyperparameters; the defaults are the trainer's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int = Field(default=4000, ge=1, le=10_000_000)
    batch_size: int = Field(default=256, ge=1, le=65_536)
    learning_rate: float = Field(default=1e-3, gt=0, le=1)
    gamma: float = Field(default=0.98, ge=0, lt=1)
    target_tau: float = Field(default=0.005, gt=0, le=1)
    hidden: int = Field(default=128, ge=1, le=4096)
    layers: int = Field(default=2, ge=1, le=8)
    eval_episodes: int = Field(default=10, ge=1, le=1000)
    seed: int = Field(default=0, ge=0, lt=2**31)


class TrainingRequest(BaseModel):
    """The body of ``POST /training/rl/start``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    algorithm: Literal["dqn"] = "dqn"
    skill: Skill | None = Field(default=None, description="Train on this skill only (default: all)")
    env: str = Field(default=DEFAULT_ENV, pattern=r"^[A-Za-z0-9_\-]+-v\d+$", max_length=64)
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    resources: Resources = Field(default_factory=Resources)


class StartResponse(BaseModel):
    """The answer to a start: the task to follow and the Slurm job behind it."""

    task_id: str
    job_id: int
    state: JobState
    status_url: str


class TrainingStatus(BaseModel):
    """The body of ``GET /training/rl/status/<task>``."""

    task_id: str
    job_id: int | None
    state: JobState
    slurm_state: str | None
    algorithm: str
    skill: str | None
    submitted_at: float
    started_at: float | None
    ended_at: float | None
    queued_s: float | None
    elapsed_s: float | None
    exit_code: str | None
    reason: str | None
    metrics: dict[str, Any] | None
    checkpoint: dict[str, Any] | None
    log_tail: str
