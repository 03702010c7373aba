"""Rollout requests, transitions, the numpy policy and the checkpoint store."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamplane.rl.checkpoints import ALL_SKILLS, CheckpointStore
from streamplane.rl.exceptions import CheckpointError, RolloutRequestError
from streamplane.rl.policy import QPolicy, RandomPolicy, q_values
from streamplane.rl.transitions import (
    RolloutRequest,
    is_rollout,
    parse_rollout,
    parse_transition,
)


def _layers(
    seed: int = 0, sizes: tuple[int, ...] = (4, 8, 2)
) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(size=(a, b)).astype(np.float32), rng.normal(size=(b,)).astype(np.float32))
        for a, b in itertools.pairwise(sizes)
    ]


def test_rollout_request_round_trip_and_defaults() -> None:
    request = parse_rollout(b'{"kind": "rl.rollout", "skill": "balance", "episodes": 3}')
    assert request.env == "CartPole-v1"
    assert request.policy_version == "latest"
    assert request.episodes == 3
    assert parse_rollout(request.to_json()) == request


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"kind": "rl.other"}', "kind"),
        (b'{"kind": "rl.rollout", "episodes": 0}', "episodes"),
        (b'{"kind": "rl.rollout", "episodes": 101}', "episodes"),
        (b'{"kind": "rl.rollout", "skill": "a;rm -rf /"}', "skill"),
        (b'{"kind": "rl.rollout", "seed": -1}', "seed"),
        (b'{"kind": "rl.rollout", "policy_version": "newest"}', "policy_version"),
    ],
)
def test_invalid_rollout_requests_name_the_problem(value: bytes, reason: str) -> None:
    with pytest.raises(RolloutRequestError, match=reason):
        parse_rollout(value)


def test_is_rollout_is_cheap_and_precise_enough() -> None:
    assert is_rollout(RolloutRequest(kind="rl.rollout").to_json())
    assert is_rollout(b' {"kind":"rl.rollout"}')
    assert not is_rollout(b'{"event_id": "e1", "tenant": "t", "value": 1.0}')
    assert not is_rollout(b"rl.rollout")
    assert not is_rollout(b"")
    late = b'{"tenant": "' + b"t" * 2000 + b'", "kind": "rl.rollout"}'
    assert is_rollout(late)


@given(st.binary(max_size=300))
def test_is_rollout_never_raises(value: bytes) -> None:
    assert isinstance(is_rollout(value), bool)


def test_parse_transition_checks_fields() -> None:
    good = {
        "env": "CartPole-v1", "skill": "s", "policy_version": 0, "episode_id": "e", "step": 0,
        "obs": [0.0] * 4, "action": 1, "reward": 1, "next_obs": [0.0] * 4,
        "terminated": False, "truncated": False,
    }  # fmt: skip
    assert parse_transition(orjson.dumps(good))["action"] == 1
    for name, bad in [("action", True), ("obs", "x"), ("step", None), ("next_obs", ["a"])]:
        with pytest.raises(ValueError, match=name):
            parse_transition(orjson.dumps({**good, name: bad}))


def test_numpy_forward_matches_jax() -> None:
    import jax.numpy as jnp

    from streamplane.rl.learner.dqn import q_network

    layers = _layers(1, (4, 16, 16, 2))
    obs = np.random.default_rng(2).normal(size=(32, 4)).astype(np.float32)
    expected = np.asarray(
        q_network([(jnp.asarray(w), jnp.asarray(b)) for w, b in layers], jnp.asarray(obs))
    )
    np.testing.assert_allclose(q_values(layers, obs), expected, rtol=1e-5, atol=1e-5)


def test_policies_act() -> None:
    rng = np.random.default_rng(0)
    assert {RandomPolicy(2).act(np.zeros(4, np.float32), rng) for _ in range(50)} == {0, 1}
    policy = QPolicy(_layers(), 3)
    obs = np.ones(4, np.float32)
    greedy = int(np.argmax(q_values(policy.layers, obs)))
    assert all(policy.act(obs, rng) == greedy for _ in range(20))
    assert {policy.with_epsilon(1.0).act(obs, rng) for _ in range(50)} == {0, 1}


def test_checkpoint_versions_and_resolution(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    assert store.latest(ALL_SKILLS) is None
    assert store.resolve("balance", "latest") is None
    first = store.save(ALL_SKILLS, _layers(0), {"env": "CartPole-v1"}, {"loss": 1.0})
    second = store.save(ALL_SKILLS, _layers(1), {"env": "CartPole-v1"}, {"loss": 0.5})
    assert (first.version, second.version) == (1, 2)
    assert store.versions(ALL_SKILLS) == [1, 2]
    assert second.metrics()["loss"] == 0.5
    assert second.metrics()["version"] == 2
    # A skill without its own line falls back to the shared one, newest first.
    resolved = store.resolve("balance", "latest")
    assert resolved is not None
    assert resolved.version == 2
    own = store.save("balance", _layers(2), {"env": "CartPole-v1"}, {})
    resolved = store.resolve("balance", "latest")
    assert resolved is not None
    assert (resolved.line, resolved.version) == ("balance", own.version)
    resolved = store.resolve("balance", 2)
    assert resolved is not None
    assert resolved.line == ALL_SKILLS
    with pytest.raises(CheckpointError, match="v9"):
        store.resolve("balance", 9)
    loaded = second.layers()
    np.testing.assert_array_equal(loaded[0][0], _layers(1)[0][0])
    assert not [p for p in (tmp_path / ALL_SKILLS).iterdir() if p.name.startswith(".")]


def test_checkpoint_save_skips_a_taken_version(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.save(ALL_SKILLS, _layers(), {}, {})
    # Another trainer took v2 after we listed the versions: ours becomes v3.
    (tmp_path / ALL_SKILLS / "v000002").mkdir()
    (tmp_path / ALL_SKILLS / "v000002" / "checkpoint.json").write_text("{}")
    assert store.save(ALL_SKILLS, _layers(), {}, {}).version == 3


def test_checkpoint_line_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="skill"):
        CheckpointStore(tmp_path).versions("../etc")
