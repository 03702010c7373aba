"""The Dagster face of the RL loop: the buffer sensor, the rollout schedule, the assets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from dagster import (
    DagsterInstance,
    RunRequest,
    SensorResult,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    materialize,
)

from streamplane.assets.rl import (
    RL_ASSET_CHECKS,
    RL_ASSETS,
    RLResource,
    rl_policy_beats_random,
    rl_policy_evaluation,
    rl_replay_buffer,
)
from streamplane.rl.checkpoints import ALL_SKILLS, CheckpointStore
from streamplane.sensors.rl import rl_buffer_sensor, rl_rollout_schedule
from tests.rl_support.helpers import random_buffer


def resource(dirs: dict[str, Path], every: int = 100) -> RLResource:
    return RLResource(
        buffer_dir=str(dirs["buffer"]),
        policy_dir=str(dirs["policies"]),
        training_dir=str(dirs["training"]),
        train_every_transitions=every,
        evaluation_episodes=5,
    )


def test_buffer_sensor_requests_training_once_per_growth(rl_dirs: dict[str, Path]) -> None:
    rl = resource(rl_dirs, every=100)
    empty = rl_buffer_sensor(build_sensor_context(resources={"rl": rl}))
    assert isinstance(empty, SkipReason)
    buffer = random_buffer(rl_dirs["buffer"], episodes=10)
    total = buffer.offset
    assert total >= 100
    result = rl_buffer_sensor(build_sensor_context(resources={"rl": rl}))
    assert isinstance(result, SensorResult)
    [request] = result.run_requests or []
    assert isinstance(request, RunRequest)
    assert request.run_key == f"rl-buffer-{total}"
    assert json.loads(result.cursor or "") == {"appended_total": total}
    # Same buffer, cursor moved: nothing more until it grows by another 100.
    again = rl_buffer_sensor(build_sensor_context(cursor=result.cursor, resources={"rl": rl}))
    assert isinstance(again, SkipReason)
    assert "grew by 0 of 100" in (again.skip_message or "")


def test_buffer_sensor_skips_a_corrupt_manifest(rl_dirs: dict[str, Path]) -> None:
    (rl_dirs["buffer"] / "manifest.json").write_text("{")
    result = rl_buffer_sensor(build_sensor_context(resources={"rl": resource(rl_dirs)}))
    assert isinstance(result, SkipReason)
    assert "cannot read" in (result.skip_message or "")


def test_rollout_schedule_requests_a_batch(rl_dirs: dict[str, Path]) -> None:
    rl = resource(rl_dirs)
    request = rl_rollout_schedule(build_schedule_context(resources={"rl": rl}))
    assert isinstance(request, RunRequest)
    config = request.run_config["ops"]["write_rollout_requests"]["config"]
    assert config == {"count": 20, "episodes": 1, "epsilon": 0.1}


def test_buffer_and_evaluation_assets(rl_dirs: dict[str, Path], instance: DagsterInstance) -> None:
    random_buffer(rl_dirs["buffer"], episodes=3)
    rng = np.random.default_rng(0)
    # A fixed "policy": push right when the pole leans right; beats random easily.
    w0 = np.zeros((4, 2), np.float32)
    w0[2, 0], w0[2, 1] = -1.0, 1.0
    w0[3, 0], w0[3, 1] = -1.0, 1.0
    del rng
    CheckpointStore(rl_dirs["policies"]).save(
        ALL_SKILLS, [(w0, np.zeros(2, np.float32))], {"env": "CartPole-v1"}, {}
    )
    result = materialize(
        [rl_replay_buffer, rl_policy_evaluation, rl_policy_beats_random],
        resources={"rl": resource(rl_dirs)},
        instance=instance,
        selection=[rl_replay_buffer.key, rl_policy_evaluation.key],
    )
    assert result.success
    [buffer_mat] = result.asset_materializations_for_node("rl_replay_buffer")
    assert buffer_mat.metadata["transitions"].value > 0
    [evaluation] = result.asset_materializations_for_node("rl_policy_evaluation")
    assert (
        evaluation.metadata["mean_return"].value > evaluation.metadata["random_mean_return"].value
    )
    [check] = result.get_asset_check_evaluations()
    assert check.passed
    assert len(RL_ASSETS) == 4
    assert [rl_policy_beats_random] == RL_ASSET_CHECKS
