"""The RL loop's automation: train when the buffer has grown, keep rollouts flowing.

- ``rl_buffer_sensor`` reads the buffer's manifest each tick and requests
  ``rl_training_job`` (``rl_replay_buffer -> rl_policy -> rl_policy_evaluation``) each
  time the buffer has taken ``RLResource.train_every_transitions`` more transitions than
  at the last request. The cursor is that count; the run key is the count too, so a
  tick evaluated twice launches once. Growth is measured on ``appended_total``, which
  retention never lowers.
- ``rl_rollout_schedule`` writes ``rollouts_per_tick`` rollout requests every minute
  while it is on: turning it on is turning training on. It is off by default.
"""

import json
from pathlib import Path
from typing import Any

from dagster import (
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    schedule,
    sensor,
)

from streamplane.assets.rl import RLResource, rl_rollout_job, rl_training_job
from streamplane.rl.buffer.manifest import read_manifest
from streamplane.rl.exceptions import ReplayBufferError

__all__ = ["RL_SCHEDULES", "RL_SENSORS", "rl_buffer_sensor", "rl_rollout_schedule"]


def _cursor_count(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        return int(json.loads(cursor)["appended_total"])
    except (ValueError, KeyError, TypeError):
        return None


@sensor(
    job=rl_training_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Requests rl_policy each time the replay buffer grew by train_every_transitions.",
)
def rl_buffer_sensor(context: SensorEvaluationContext, rl: RLResource) -> SensorResult | SkipReason:
    """Compare the manifest's appended_total with the cursor."""
    try:
        manifest = read_manifest(Path(rl.buffer_dir))
    except ReplayBufferError as exc:
        return SkipReason(f"cannot read the replay buffer: {exc}")
    total = manifest.appended_total
    since = _cursor_count(context.cursor) or 0
    grown = total - since
    if grown < rl.train_every_transitions:
        return SkipReason(
            f"buffer grew by {grown} of {rl.train_every_transitions} transitions "
            f"since the last training request ({total} in all)"
        )
    return SensorResult(
        run_requests=[
            RunRequest(
                run_key=f"rl-buffer-{total}",
                tags={"streamplane/rl_buffer_appended_total": str(total)},
            )
        ],
        cursor=json.dumps({"appended_total": total}),
    )


@schedule(
    job=rl_rollout_job,
    cron_schedule="* * * * *",
    default_status=DefaultScheduleStatus.STOPPED,
    description="While on (training enabled), writes rollout requests every minute.",
)
def rl_rollout_schedule(context: ScheduleEvaluationContext, rl: RLResource) -> RunRequest:
    """One batch of rollout requests per tick."""
    config: dict[str, Any] = {
        "count": rl.rollouts_per_tick,
        "episodes": rl.episodes_per_rollout,
        "epsilon": rl.exploration_epsilon,
    }
    return RunRequest(
        run_key=None, run_config={"ops": {"write_rollout_requests": {"config": config}}}
    )


RL_SENSORS: list[Any] = [rl_buffer_sensor]
RL_SCHEDULES: list[Any] = [rl_rollout_schedule]
