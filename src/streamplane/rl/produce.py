"""Writing rollout requests: the body of ``streamplane produce --rollouts N --skill S``."""

from __future__ import annotations

import logging
from typing import Literal

from streamplane.config import Settings
from streamplane.platform.kafka.config import producer_config
from streamplane.platform.kafka.exceptions import KafkaPlatformError, KafkaUnavailable
from streamplane.platform.kafka.producer import DurableProducer
from streamplane.rl.transitions import DEFAULT_ENV, DEFAULT_SKILL, RolloutRequest

logger = logging.getLogger(__name__)

# A flush that has not finished in this long means the cluster is not taking writes.
_FLUSH_TIMEOUT_S = 60.0


def rollout_requests(
    count: int,
    skill: str = DEFAULT_SKILL,
    *,
    env: str = DEFAULT_ENV,
    episodes: int = 1,
    policy_version: int | Literal["latest"] = "latest",
    seed: int | None = None,
    epsilon: float = 0.05,
) -> list[RolloutRequest]:
    """``count`` validated requests; request ``i`` gets seed ``seed + i * episodes``.

    Raises:
        pydantic.ValidationError: a field is out of range (a bad skill name, say).
    """
    return [
        RolloutRequest(
            kind="rl.rollout",
            env=env,
            skill=skill,
            episodes=episodes,
            policy_version=policy_version,
            seed=None if seed is None else seed + i * episodes,
            epsilon=epsilon,
        )
        for i in range(count)
    ]


def produce_rollouts(
    settings: Settings,
    count: int,
    skill: str = DEFAULT_SKILL,
    *,
    env: str = DEFAULT_ENV,
    episodes: int = 1,
    policy_version: int | Literal["latest"] = "latest",
    seed: int | None = None,
    epsilon: float = 0.05,
    topic: str | None = None,
    tenant: str | None = None,
) -> int:
    """Write ``count`` rollout requests to ``topic`` (default INPUT_TOPIC); return how many.

    Returns only once every request is acknowledged by Kafka (acks=all).

    Raises:
        pydantic.ValidationError: a request field is out of range.
        KafkaUnavailable: Kafka did not take the writes in time.
    """
    requests = rollout_requests(
        count,
        skill,
        env=env,
        episodes=episodes,
        policy_version=policy_version,
        seed=seed,
        epsilon=epsilon,
    )
    target = topic or settings.kafka.input_topic
    failures: list[str] = []

    def report(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    headers: list[tuple[str, str | bytes | None]] | None = (
        [("tenant", tenant.encode())] if tenant else None
    )
    producer = DurableProducer(producer_config(settings, "streamplane-rollouts"))
    try:
        for index, request in enumerate(requests):
            key = f"{skill}-{index}".encode()
            producer.produce_waiting(target, request.to_json(), key, headers, report, poll=True)
            producer.poll(0)
        remaining = producer.flush(_FLUSH_TIMEOUT_S)
    except KafkaPlatformError as exc:
        raise KafkaUnavailable(f"cannot write rollout requests to {target!r}: {exc}") from exc
    if remaining or failures:
        raise KafkaUnavailable(
            f"{remaining} rollout requests unsent, {len(failures)} failed "
            f"({failures[:1]}) writing to {target!r}"
        )
    logger.info("rollout requests written", extra={"count": count, "topic": target, "skill": skill})
    return count
