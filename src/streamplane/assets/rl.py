"""The RL loop's assets: ``rl_results -> rl_replay_buffer -> rl_policy -> rl_policy_evaluation``.

- ``rl_results`` is the Kafka topic of transitions (external: the env runners write it).
- ``rl_replay_buffer`` records the buffer's manifest: transitions and shards per skill.
- ``rl_policy`` submits the trainer to Slurm and follows the job to its end. Its
  submission is keyed by the Dagster run's root id, so a retried run (same root)
  re-attaches to a job that is still pending or running instead of submitting a second
  one. A cancelled or failed job fails the materialization with the job's reason and log.
- ``rl_policy_evaluation`` plays evaluation episodes with the newest checkpoint and with
  the random policy on the same seeds; the check ``rl_policy_beats_random`` passes when
  the policy's mean return is higher.

Everything runs through :mod:`streamplane.rl`; :class:`RLResource` holds
the knobs. Export lists (``RL_ASSETS``, ``RL_ASSET_CHECKS``, ``RL_JOBS``) are merged into
the Definitions, with :func:`rl_resources_from_environment` for the ``rl`` resource.
"""

import time
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Config,
    ConfigurableResource,
    Failure,
    MaterializeResult,
    MetadataValue,
    OpExecutionContext,
    asset,
    asset_check,
    define_asset_job,
    job,
    op,
)
from pydantic import Field

from streamplane.config import RLSettings, load_settings
from streamplane.resources import StreamplaneResource
from streamplane.rl.buffer.manifest import read_manifest
from streamplane.rl.checkpoints import ALL_SKILLS, Checkpoint, CheckpointStore
from streamplane.rl.exceptions import CheckpointError
from streamplane.rl.slurm.client import SlurmClient
from streamplane.rl.slurm.jobs import JobInfo, JobState
from streamplane.rl.slurm.runs import TrainingService
from streamplane.rl.slurm.schema import Hyperparameters, Resources, TrainingRequest

__all__ = [
    "GROUP",
    "RL_ASSETS",
    "RL_ASSET_CHECKS",
    "RL_JOBS",
    "RL_POLICY",
    "RL_POLICY_EVALUATION",
    "RL_REPLAY_BUFFER",
    "RL_RESULTS",
    "RLResource",
    "rl_policy",
    "rl_policy_beats_random",
    "rl_policy_evaluation",
    "rl_replay_buffer",
    "rl_resources_from_environment",
    "rl_rollout_job",
    "rl_training_job",
]

GROUP = "rl"
RL_RESULTS = AssetKey("rl_results")
RL_REPLAY_BUFFER = AssetKey("rl_replay_buffer")
RL_POLICY = AssetKey("rl_policy")
RL_POLICY_EVALUATION = AssetKey("rl_policy_evaluation")


class RLResource(ConfigurableResource):  # type: ignore[type-arg]
    """Where the RL loop keeps its files, how training runs on Slurm, how often it runs."""

    buffer_dir: str = Field(description="RL_BUFFER_DIR: the replay buffer's folder.")
    results_topic: str = Field(
        default="rl.results", description="RL_RESULTS_TOPIC: the transitions topic."
    )
    policy_dir: str | None = Field(
        default=None, description="RL_POLICY_DIR; default <buffer_dir>/policies."
    )
    training_dir: str | None = Field(
        default=None, description="RL_TRAINING_DIR; default <buffer_dir>/training."
    )
    slurm_partition: str | None = Field(default=None, description="Slurm partition.")
    trainer_python: str | None = Field(
        default=None, description="Python the Slurm job runs; default this interpreter."
    )
    poll_interval_s: float = Field(
        default=5.0, gt=0, description="How often rl_policy polls Slurm for its job."
    )
    job_timeout_s: float = Field(
        default=6 * 3600.0, gt=0, description="Longest rl_policy follows a job before failing."
    )
    train_every_transitions: int = Field(
        default=20_000,
        ge=1,
        description="rl_buffer_sensor requests rl_policy each time the buffer grew by this.",
    )
    evaluation_episodes: int = Field(
        default=20, ge=1, description="Episodes rl_policy_evaluation plays per policy."
    )
    rollouts_per_tick: int = Field(
        default=20, ge=1, description="Rollout requests the rollout schedule writes per tick."
    )
    episodes_per_rollout: int = Field(default=1, ge=1, description="Episodes per request.")
    exploration_epsilon: float = Field(
        default=0.1, ge=0, le=1, description="Exploration rate of scheduled rollouts."
    )

    def training_settings(self) -> RLSettings:
        """The runtime's RL settings for these values (environment for the rest)."""
        return load_settings(
            rl_buffer_dir=Path(self.buffer_dir),
            rl_results_topic=self.results_topic,
            rl_policy_dir=Path(self.policy_dir) if self.policy_dir else None,
            rl_training_dir=Path(self.training_dir) if self.training_dir else None,
            slurm_partition=self.slurm_partition,
            rl_trainer_python=Path(self.trainer_python) if self.trainer_python else None,
        ).rl

    def service(self) -> TrainingService:
        """A training service over the real Slurm commands."""
        return TrainingService(self.training_settings(), SlurmClient())


def rl_resources_from_environment() -> dict[str, RLResource]:
    """``{"rl": RLResource}`` from RL_BUFFER_DIR, RL_RESULTS_TOPIC and the RL_* variables.

    Without RL_BUFFER_DIR the buffer defaults to ``.data/rl/buffer``.
    """
    training = load_settings().rl
    buffer_dir = training.rl_buffer_dir or Path(".data/rl/buffer")
    return {
        "rl": RLResource(
            buffer_dir=str(buffer_dir),
            results_topic=training.rl_results_topic or "rl.results",
            policy_dir=str(training.rl_policy_dir) if training.rl_policy_dir else None,
            training_dir=str(training.rl_training_dir) if training.rl_training_dir else None,
            slurm_partition=training.slurm_partition,
            trainer_python=str(training.rl_trainer_python),
        )
    }


rl_results = AssetSpec(
    RL_RESULTS,
    description=(
        "RL transitions in Kafka (RL_RESULTS_TOPIC), one record per environment step, "
        "written by the workers' env runners for rollout requests."
    ),
    group_name=GROUP,
    kinds={"kafka"},
)


@asset(
    key=RL_REPLAY_BUFFER,
    deps=[RL_RESULTS],
    group_name=GROUP,
    kinds={"parquet"},
    description=(
        "The replay buffer's manifest: complete Parquet shards of transitions, per skill. "
        "Written continuously by the RL buffer; this records its state."
    ),
)
def rl_replay_buffer(context: AssetExecutionContext, rl: RLResource) -> MaterializeResult[Any]:
    """Record the manifest's counts."""
    manifest = read_manifest(Path(rl.buffer_dir))
    context.log.info(
        f"buffer holds {manifest.transitions} transitions in {len(manifest.shards)} shards"
    )
    return MaterializeResult(
        metadata={
            "transitions": manifest.transitions,
            "appended_total": manifest.appended_total,
            "shards": len(manifest.shards),
            "bytes": manifest.bytes,
            "transitions_by_skill": MetadataValue.json(manifest.transitions_by_skill()),
            "shards_by_skill": MetadataValue.json(manifest.shards_by_skill()),
            "next_offsets": MetadataValue.json(
                {str(p): o for p, o in manifest.next_offsets.items()}
            ),
        }
    )


class PolicyConfig(Config):
    """What to train: the request ``POST /training/rl/start`` takes, as run config."""

    skill: str | None = Field(default=None, description="Train on one skill; none: all.")
    env: str = Field(default="CartPole-v1", description="Gymnasium id.")
    steps: int = Field(default=4000, description="Gradient steps.")
    learning_rate: float = Field(default=1e-3, description="Adam learning rate.")
    batch_size: int = Field(default=256, description="Minibatch size.")
    eval_episodes: int = Field(default=10, description="Episodes the trainer evaluates.")
    seed: int = Field(default=0, description="Seed of the fit.")
    cpus: int = Field(default=1, description="Slurm CPUs.")
    gpus: int = Field(default=0, description="Slurm GPUs.")
    memory_mb: int = Field(default=2048, description="Slurm memory, MiB.")
    time_limit_minutes: int = Field(default=60, description="Slurm time limit.")

    def request(self) -> TrainingRequest:
        """The validated training request (bad values fail the run before Slurm)."""
        return TrainingRequest(
            skill=self.skill,
            env=self.env,
            hyperparameters=Hyperparameters(
                steps=self.steps,
                learning_rate=self.learning_rate,
                batch_size=self.batch_size,
                eval_episodes=self.eval_episodes,
                seed=self.seed,
            ),
            resources=Resources(
                cpus=self.cpus,
                gpus=self.gpus,
                memory_mb=self.memory_mb,
                time_limit_minutes=self.time_limit_minutes,
            ),
        )


def _root_run_id(context: AssetExecutionContext) -> str:
    """The run's root id: the same for a run and all its retries and re-executions."""
    tags = context.run.tags
    return str(tags.get("dagster/root_run_id") or context.run.root_run_id or context.run.run_id)


@asset(
    key=RL_POLICY,
    deps=[RL_REPLAY_BUFFER],
    group_name=GROUP,
    kinds={"slurm", "jax"},
    description=(
        "A DQN policy checkpoint trained on the replay buffer by a Slurm job. A retried "
        "run re-attaches to its job; a cancelled or failed job fails the materialization."
    ),
)
def rl_policy(
    context: AssetExecutionContext, config: PolicyConfig, rl: RLResource
) -> MaterializeResult[Any]:
    """Submit (or re-attach to) the training job and follow it to its end."""
    service = rl.service()
    request = config.request()
    group = f"dagster-{_root_run_id(context)}"
    record = service.submit(request, group=group)
    context.log.info(f"training task {record.task_id} is Slurm job {record.job_id}")
    assert record.job_id is not None
    last: list[JobState] = []

    def progress(info: JobInfo) -> None:
        if not last or last[-1] != info.state:
            last.append(info.state)
            context.log.info(f"Slurm job {info.job_id}: {info.slurm_state}")

    service.slurm.wait(record.job_id, rl.job_timeout_s, rl.poll_interval_s, on_poll=progress)
    status = service.status(record.task_id)
    base = {
        "task_id": status.task_id,
        "slurm_job_id": status.job_id,
        "state": status.state.value,
        "states_seen": ", ".join(s.value for s in last),
    }
    if status.state != JobState.COMPLETED:
        what = "was cancelled" if status.state == JobState.CANCELLED else "failed"
        raise Failure(
            description=(
                f"Slurm job {status.job_id} (training task {status.task_id}) {what}: "
                f"{status.slurm_state}, exit code {status.exit_code}, reason {status.reason}"
            ),
            metadata={**base, "log_tail": MetadataValue.md(f"```\n{status.log_tail[-3000:]}\n```")},
        )
    metrics = status.metrics or {}
    checkpoint = status.checkpoint or {}
    return MaterializeResult(
        metadata={
            **base,
            "elapsed_s": status.elapsed_s or 0.0,
            "queued_s": status.queued_s or 0.0,
            "loss": float(metrics.get("loss") or 0.0),
            "eval_mean_return": float(metrics.get("eval_mean_return") or 0.0),
            "transitions": int(metrics.get("transitions") or 0),
            "line": str(checkpoint.get("line", "")),
            "version": int(checkpoint.get("version") or 0),
            "checkpoint": MetadataValue.path(str(checkpoint.get("checkpoint", ""))),
        }
    )


class EvaluationConfig(Config):
    """Which policy to evaluate and how."""

    skill: str | None = Field(
        default=None,
        description=(
            "Evaluate the newest policy of this line; none: the version rl_policy last "
            "materialized (else the newest of the all-skills line)."
        ),
    )
    env: str = Field(default="CartPole-v1", description="Gymnasium id.")
    seed: int = Field(default=2_000_000, description="Seed of the first episode.")


def _policy_to_evaluate(
    context: AssetExecutionContext, config: EvaluationConfig, store: CheckpointStore
) -> Checkpoint:
    """The checkpoint rl_policy produced last, or the newest of the configured line."""
    if config.skill is None:
        event = context.instance.get_latest_materialization_event(RL_POLICY)
        materialization = event.asset_materialization if event is not None else None
        if materialization is not None:
            line = materialization.metadata.get("line")
            version = materialization.metadata.get("version")
            if line is not None and version is not None and line.value:
                try:
                    return store.get(str(line.value), int(str(version.value)))
                except CheckpointError as exc:
                    raise Failure(description=f"rl_policy's checkpoint is gone: {exc}") from exc
    line_name = config.skill or ALL_SKILLS
    checkpoint = store.latest(line_name)
    if checkpoint is None:
        raise Failure(description=f"no policy checkpoint in line {line_name!r} to evaluate")
    return checkpoint


@asset(
    key=RL_POLICY_EVALUATION,
    deps=[RL_POLICY],
    group_name=GROUP,
    kinds={"gymnasium"},
    description="Mean return of the newest policy and of the random policy on the same seeds.",
)
def rl_policy_evaluation(
    context: AssetExecutionContext, config: EvaluationConfig, rl: RLResource
) -> MaterializeResult[Any]:
    """Play the evaluation episodes."""
    from streamplane.rl.envs.rollouts import env_shape, evaluate, make_env
    from streamplane.rl.policy import RandomPolicy

    training = rl.training_settings()
    checkpoint = _policy_to_evaluate(context, config, CheckpointStore(training.policy_dir))
    line = checkpoint.line
    env = make_env(config.env, training.allowed_envs)
    try:
        episodes = rl.evaluation_episodes
        returns = evaluate(env, config.env, checkpoint.policy(), episodes, config.seed)
        baseline = evaluate(env, config.env, RandomPolicy(env_shape(env)[1]), episodes, config.seed)
    finally:
        env.close()
    mean = sum(returns) / len(returns)
    random_mean = sum(baseline) / len(baseline)
    context.log.info(f"policy v{checkpoint.version}: {mean:.1f}; random: {random_mean:.1f}")
    return MaterializeResult(
        metadata={
            "line": line,
            "version": checkpoint.version,
            "episodes": episodes,
            "mean_return": mean,
            "random_mean_return": random_mean,
            "min_return": min(returns),
            "max_return": max(returns),
        }
    )


@asset_check(
    asset=RL_POLICY_EVALUATION,
    description="The newest policy's mean return beats the random policy's on the same seeds.",
)
def rl_policy_beats_random(context: AssetCheckExecutionContext) -> AssetCheckResult:
    """Compare the two means the latest evaluation recorded."""
    event = context.instance.get_latest_materialization_event(RL_POLICY_EVALUATION)
    materialization = event.asset_materialization if event is not None else None
    if materialization is None:
        return AssetCheckResult(
            passed=False, severity=AssetCheckSeverity.ERROR, description="no evaluation yet"
        )
    metadata = materialization.metadata
    mean = float(metadata["mean_return"].value)
    random_mean = float(metadata["random_mean_return"].value)
    return AssetCheckResult(
        passed=mean > random_mean,
        severity=AssetCheckSeverity.ERROR,
        metadata={"mean_return": mean, "random_mean_return": random_mean},
        description=f"policy {mean:.1f} vs random {random_mean:.1f}",
    )


rl_training_job = define_asset_job(
    "rl_training_job",
    selection=[RL_REPLAY_BUFFER, RL_POLICY, RL_POLICY_EVALUATION],
    description="Record the buffer, train a policy on Slurm, evaluate it.",
)


class RolloutConfig(Config):
    """How many rollout requests to write."""

    count: int = Field(default=20, description="Requests to write.")
    skill: str = Field(default="default", description="Skill of the rollouts.")
    episodes: int = Field(default=1, description="Episodes per request.")
    epsilon: float = Field(default=0.1, description="Exploration rate.")


@op(description="Write rollout requests to INPUT_TOPIC for the workers' env runners.")
def write_rollout_requests(
    context: OpExecutionContext, config: RolloutConfig, streamplane: StreamplaneResource
) -> int:
    """Produce the requests; the workers play them with the newest checkpoint."""
    from streamplane.rl.produce import produce_rollouts

    started = time.monotonic()
    written = produce_rollouts(
        streamplane.settings(),
        config.count,
        config.skill,
        episodes=config.episodes,
        epsilon=config.epsilon,
    )
    context.log.info(f"wrote {written} rollout requests in {time.monotonic() - started:.2f} s")
    return written


@job(description="Write one batch of rollout requests (the rollout schedule runs it).")
def rl_rollout_job() -> None:
    """One op: write_rollout_requests."""
    write_rollout_requests()


RL_ASSETS: list[Any] = [rl_results, rl_replay_buffer, rl_policy, rl_policy_evaluation]
RL_ASSET_CHECKS: list[Any] = [rl_policy_beats_random]
RL_JOBS: list[Any] = [rl_training_job, rl_rollout_job]
