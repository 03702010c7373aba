"""The env runner: rollout requests in, transitions out, bad requests to the DLQ."""

from __future__ import annotations

import itertools

import numpy as np
import orjson

from streamplane.config import RLSettings, Settings
from streamplane.platform import headers as h
from streamplane.platform.records import Records
from streamplane.platform.worker.processor import ProcessorContext, WorkItem
from streamplane.rl.checkpoints import ALL_SKILLS, CheckpointStore
from streamplane.rl.envs.env_runner import RolloutProcessor
from streamplane.rl.transitions import RolloutRequest

Emitted = list[tuple[str, bytes | None, bytes, h.HeaderList]]


def item(values: list[bytes], attempt: int = 1) -> WorkItem:
    records = Records(
        topic="in",
        partition=2,
        offsets=list(range(40, 40 + len(values))),
        timestamps_ms=[0] * len(values),
        keys=[b"k"] * len(values),
        values=values,
        headers={0: [("trace", b"t1")]},
    )
    return WorkItem(task_id="task-1", tenant="acme", attempt=attempt, records=records)


def run(processor: RolloutProcessor, work: WorkItem) -> Emitted:
    out: Emitted = []
    processor.open(ProcessorContext("unused", "the-dlq", Settings()))
    processor.process(work, lambda t, k, v, hd: out.append((t, k, v, hd)))
    return out


def request(**fields: object) -> bytes:
    return orjson.dumps({"kind": "rl.rollout", **fields})


def test_random_rollout_emits_every_transition_with_source_headers(
    training_settings: RLSettings,
) -> None:
    processor = RolloutProcessor(Settings(), training_settings)
    out = run(processor, item([request(skill="balance", episodes=2, seed=7)]))
    assert out
    assert {topic for topic, *_ in out} == {"rl-results-test"}
    transitions = [orjson.loads(v) for _, _, v, _ in out]
    episodes = {t["episode_id"] for t in transitions}
    assert episodes == {"in/2/40/0", "in/2/40/1"}
    assert all(t["policy_version"] == 0 and t["skill"] == "balance" for t in transitions)
    for episode in episodes:
        steps = [t for t in transitions if t["episode_id"] == episode]
        assert [t["step"] for t in steps] == list(range(len(steps)))
        assert steps[-1]["terminated"] or steps[-1]["truncated"]
        assert not any(t["terminated"] or t["truncated"] for t in steps[:-1])
        for a, b in itertools.pairwise(steps):
            assert a["next_obs"] == b["obs"]
    headers = dict(out[0][3])
    assert headers[h.SRC_TOPIC] == b"in"
    assert headers[h.SRC_PARTITION] == b"2"
    assert headers[h.SRC_OFFSET] == b"40"
    assert headers[h.TENANT] == b"acme"
    assert out[0][1] == b"in/2/40/0"
    # A redelivery replays the same episodes (same seeds, same ids).
    again = run(
        RolloutProcessor(Settings(), training_settings),
        item([request(skill="balance", episodes=2, seed=7)], attempt=2),
    )
    assert [v for _, _, v, _ in again] == [v for _, _, v, _ in out]
    assert dict(again[0][3])[h.ATTEMPT] == b"2"


def test_invalid_requests_go_to_the_dlq_and_the_rest_goes_on(
    training_settings: RLSettings,
) -> None:
    processor = RolloutProcessor(Settings(), training_settings)
    values = [
        b"{broken",
        request(env="Evil-v0"),
        request(env="os:system-v0"),
        request(policy_version=5),
        request(seed=1),
    ]
    out = run(processor, item(values))
    dead = [(k, v, dict(hd)) for t, k, v, hd in out if t == "the-dlq"]
    assert [v for _, v, _ in dead] == values[:4]
    assert all(hd[h.ERROR_KIND] == b"rollout" for _, _, hd in dead)
    assert b"not JSON" in dead[0][2][h.ERROR]
    assert b"not allowed" in dead[1][2][h.ERROR]
    assert b"v5" in dead[3][2][h.ERROR]
    assert dead[0][2]["trace"] == b"t1"  # input headers are kept
    assert any(t == "rl-results-test" for t, *_ in out)


def test_newest_checkpoint_is_picked_up(training_settings: RLSettings) -> None:
    processor = RolloutProcessor(Settings(), training_settings)
    store = CheckpointStore(training_settings.policy_dir)
    rng = np.random.default_rng(0)

    def save() -> int:
        layers = [
            (rng.normal(size=(4, 8)).astype(np.float32), np.zeros(8, np.float32)),
            (rng.normal(size=(8, 2)).astype(np.float32), np.zeros(2, np.float32)),
        ]
        return store.save(ALL_SKILLS, layers, {"env": "CartPole-v1"}, {}).version

    def versions() -> set[int]:
        out = run(processor, item([request(seed=3, epsilon=0.0)]))
        return {orjson.loads(v)["policy_version"] for _, _, v, _ in out}

    assert versions() == {0}
    first = save()
    assert versions() == {first}
    second = save()
    assert versions() == {second}


def test_checkpoint_of_the_wrong_shape_is_refused(training_settings: RLSettings) -> None:
    store = CheckpointStore(training_settings.policy_dir)
    layers = [(np.zeros((6, 2), np.float32), np.zeros(2, np.float32))]
    store.save(ALL_SKILLS, layers, {"env": "Acrobot-v1"}, {})
    out = run(RolloutProcessor(Settings(), training_settings), item([request(seed=1)]))
    assert len(out) == 1
    assert b"inputs" in dict(out[0][3])[h.ERROR]


def test_request_round_trip_through_produce_helpers() -> None:
    from streamplane.rl.produce import rollout_requests

    made = rollout_requests(3, "walk", episodes=2, seed=10)
    assert [r.seed for r in made] == [10, 12, 14]
    assert all(isinstance(r, RolloutRequest) and r.skill == "walk" for r in made)
