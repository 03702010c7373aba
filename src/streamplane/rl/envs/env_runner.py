"""The worker's env runner: rollout requests in, one transition record per step out.

A record whose JSON has ``"kind": "rl.rollout"`` (see
:class:`~streamplane.rl.transitions.RolloutRequest`) makes the worker play
that many episodes with the named policy checkpoint (the newest by default, the random
policy while there is none) and emit every transition to ``RL_RESULTS_TOPIC``, keyed by
episode id, with the request's source in the ``sp-*`` headers. The pipeline acks the
task only once all of them are written. An invalid request (bad JSON, unknown env, a
missing checkpoint version) goes to the dead-letter topic with ``sp-error-kind: rollout``
and the rest of the task goes on.

Episode ids and seeds derive from the request's topic, partition and offset, so a
redelivered request replays the same episodes with the same ids: duplicates can be told
apart downstream.

Gymnasium is imported on first use only, so a worker that never sees a rollout request
does not need the ``rl`` extra.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from streamplane.config import RLSettings, Settings
from streamplane.platform import headers as h
from streamplane.platform.worker.processor import (
    Emit,
    Processor,
    ProcessorContext,
    WorkItem,
)
from streamplane.rl import metrics as tm
from streamplane.rl.checkpoints import Checkpoint, CheckpointStore
from streamplane.rl.exceptions import CheckpointError, RolloutRequestError
from streamplane.rl.policy import Policy, QPolicy, RandomPolicy
from streamplane.rl.transitions import (
    RolloutRequest,
    is_rollout,
    parse_rollout,
)

if TYPE_CHECKING:
    import gymnasium as gym

__all__ = ["ROLLOUT_ERROR_KIND", "RolloutProcessor", "is_rollout"]

logger = logging.getLogger(__name__)

ROLLOUT_ERROR_KIND = "rollout"


class RolloutProcessor(Processor):
    """Plays rollout requests in Gymnasium and emits their transitions.

    Args:
        settings: The worker's settings; ``RL_RESULTS_TOPIC`` must be set.
        training: The RL settings (read from the environment when not given).
    """

    name = "rollouts"

    def __init__(self, settings: Settings, training: RLSettings | None = None) -> None:
        self._training = training if training is not None else settings.rl
        self._results_topic = self._training.results_topic
        self._dlq = settings.kafka.dlq_topic
        self._store = CheckpointStore(self._training.policy_dir)
        self._envs: dict[str, gym.Env[Any, Any]] = {}
        self._policies: dict[tuple[str, int], QPolicy] = {}

    def open(self, context: ProcessorContext) -> None:
        """Follow the dead-letter topic the supervisor names."""
        self._dlq = context.dlq_topic

    def process(self, item: WorkItem, emit: Emit) -> None:
        """Play every request of the task; dead-letter the invalid ones."""
        records = item.records
        for index, value in enumerate(records.values):
            source = h.source_headers(
                records.topic,
                records.partition,
                records.offsets[index],
                item.tenant_at(index),
                item.attempt,
            )
            try:
                request = parse_rollout(value)
                self._play(
                    request, records.topic, records.partition, records.offsets[index], source, emit
                )
            except (RolloutRequestError, CheckpointError) as exc:
                logger.warning(
                    "rollout request dead-lettered",
                    extra={"offset": records.offsets[index], "reason": str(exc)},
                )
                headers = h.dead_letter_headers(
                    list(records.headers_of(index)), source, ROLLOUT_ERROR_KIND, str(exc)
                )
                emit(self._dlq, records.keys[index], value, headers)

    def close(self) -> None:
        """Close the cached environments."""
        for env in self._envs.values():
            env.close()
        self._envs.clear()

    # ------------------------------------------------------------------------ internals

    def _play(
        self,
        request: RolloutRequest,
        topic: str,
        partition: int,
        offset: int,
        headers: h.HeaderList,
        emit: Emit,
    ) -> None:
        from streamplane.rl.envs.rollouts import (
            check_fits,
            default_seed,
            env_shape,
            run_episode,
        )

        env = self._env(request.env)
        policy = self._policy(request, env_shape(env)[1])
        check_fits(policy, request.env, env)
        seed = request.seed if request.seed is not None else default_seed(topic, partition, offset)
        out, skill = self._results_topic, tm.skill_label(request.skill)
        for episode in range(request.episodes):
            episode_id = f"{topic}/{partition}/{offset}/{episode}"
            key = episode_id.encode()
            count = 0
            for transition in run_episode(
                env,
                request.env,
                policy,
                skill=request.skill,
                episode_id=episode_id,
                seed=seed + episode,
            ):
                emit(out, key, transition.to_json(), headers)
                count += 1
            tm.ROLLOUT_EPISODES.labels(skill).inc()
            tm.ROLLOUT_TRANSITIONS.labels(skill).inc(count)

    def _env(self, env_id: str) -> gym.Env[Any, Any]:
        from streamplane.rl.envs.rollouts import make_env

        env = self._envs.get(env_id)
        if env is None:
            env = make_env(env_id, self._training.allowed_envs)
            self._envs[env_id] = env
        return env

    def _policy(self, request: RolloutRequest, n_actions: int) -> Policy:
        """The policy the request names; checkpoints are cached by (line, version)."""
        if request.policy_version == 0:
            return RandomPolicy(n_actions)
        checkpoint = self._store.resolve(request.skill, request.policy_version)
        if checkpoint is None:
            return RandomPolicy(n_actions)
        return self._load(checkpoint).with_epsilon(request.epsilon)

    def _load(self, checkpoint: Checkpoint) -> QPolicy:
        key = (checkpoint.line, checkpoint.version)
        policy = self._policies.get(key)
        if policy is None:
            policy = checkpoint.policy()
            # Older versions are not asked for again once a newer one exists.
            self._policies = {k: v for k, v in self._policies.items() if k[0] != key[0]}
            self._policies[key] = policy
        return policy


def rollout_processor(settings: Settings) -> RolloutProcessor:
    """Factory for ``WORKER_PROCESSOR=streamplane.rl.envs.env_runner:rollout_processor``."""
    return RolloutProcessor(settings)
