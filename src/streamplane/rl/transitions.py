"""The two RL record types: rollout requests (in) and transitions (out), and their schemas.

A rollout request is a JSON object on the input topic with ``"kind": "rl.rollout"``; an
env runner answers it with one JSON transition per environment step on
``RL_RESULTS_TOPIC``, keyed by episode id so that an episode stays in one partition, in
order. The buffer stores transitions as Parquet rows (see `parquet_schema`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from streamplane.rl.exceptions import RolloutRequestError

ROLLOUT_KIND = "rl.rollout"
DEFAULT_ENV = "CartPole-v1"
DEFAULT_SKILL = "default"
#: Policy version 0 is the uniform random policy; trained checkpoints count from 1.
RANDOM_POLICY_VERSION = 0

_SKILL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
# The cheap pre-check: a rollout request is a JSON object that names its kind; anything
# else (the demo events, ~200 B each) is rejected by one substring search, no JSON parsing.
_KIND_MARK = b'"rl.rollout"'


def check_skill(value: str) -> str:
    """Return ``value`` if it is a valid skill name (it becomes a label and a folder name)."""
    if not _SKILL.match(value):
        raise ValueError(
            f"skill must be 1-64 letters, digits, '_', '.' or '-' (not first), got {value!r}"
        )
    return value


Skill = Annotated[str, AfterValidator(check_skill)]


class RolloutRequest(BaseModel):
    """Run ``episodes`` episodes of ``env`` with a policy checkpoint and emit the transitions.

    ``policy_version`` is ``"latest"`` (the newest checkpoint of the skill, else of the
    shared line, else the random policy), ``0`` (the random policy) or a checkpoint version.
    Episode ``i`` is seeded with ``seed + i`` when ``seed`` is given, so a redelivered
    request replays the same episodes. ``epsilon`` is the exploration rate.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    kind: Literal["rl.rollout"]
    env: str = Field(DEFAULT_ENV, min_length=1, max_length=128)
    skill: Skill = DEFAULT_SKILL
    # A task is acked only after all its transitions are written, within the supervisor's
    # lease (60 s by default): 100 CartPole episodes of 500 steps take ~5 s, well inside.
    episodes: int = Field(1, ge=1, le=100)
    policy_version: int | Literal["latest"] = Field("latest")
    seed: int | None = Field(None, ge=0, lt=2**31)
    epsilon: float = Field(0.05, ge=0.0, le=1.0)

    def to_json(self) -> bytes:
        """The request as the JSON bytes of a record value."""
        return orjson.dumps(self.model_dump())


def is_rollout(value: bytes) -> bool:
    """Cheap check, without parsing JSON, of whether ``value`` may be a rollout request.

    True means "route it to the env runner", which then parses it properly and dead-letters
    it if it is not a valid request; False is certain for anything that does not mention
    the kind.
    """
    return value.lstrip()[:1] == b"{" and _KIND_MARK in value


def parse_rollout(value: bytes) -> RolloutRequest:
    """Parse and validate a rollout request.

    Raises:
        RolloutRequestError: not JSON, not an object, or a field out of range.
    """
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise RolloutRequestError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise RolloutRequestError("a rollout request must be a JSON object")
    try:
        return RolloutRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "request"
        raise RolloutRequestError(f"{where}: {first.get('msg')}") from exc


@dataclass(frozen=True, slots=True)
class Transition:
    """One environment step, as written to RL_RESULTS_TOPIC."""

    env: str
    skill: str
    policy_version: int
    episode_id: str
    step: int
    obs: list[float]
    action: int
    reward: float
    next_obs: list[float]
    terminated: bool
    truncated: bool

    def to_json(self) -> bytes:
        """JSON bytes of the record value."""
        return orjson.dumps(
            {
                "env": self.env,
                "skill": self.skill,
                "policy_version": self.policy_version,
                "episode_id": self.episode_id,
                "step": self.step,
                "obs": self.obs,
                "action": self.action,
                "reward": self.reward,
                "next_obs": self.next_obs,
                "terminated": self.terminated,
                "truncated": self.truncated,
            }
        )


_TRANSITION_FIELDS: dict[str, type | tuple[type, ...]] = {
    "env": str,
    "skill": str,
    "policy_version": int,
    "episode_id": str,
    "step": int,
    "obs": list,
    "action": int,
    "reward": (int, float),
    "next_obs": list,
    "terminated": bool,
    "truncated": bool,
}


def parse_transition(value: bytes) -> dict[str, Any]:
    """Parse a transition record into a dict with every field of :class:`Transition`.

    Raises:
        ValueError: not JSON, or a field missing or of the wrong type.
    """
    data = orjson.loads(value)
    if not isinstance(data, dict):
        raise ValueError("a transition must be a JSON object")
    for name, kind in _TRANSITION_FIELDS.items():
        field = data.get(name)
        if not isinstance(field, kind) or (kind is int and isinstance(field, bool)):
            raise ValueError(f"transition field {name!r} is missing or not {kind}")
    for name in ("obs", "next_obs"):
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in data[name]):
            raise ValueError(f"transition field {name!r} must be a list of numbers")
    return data
