"""The RL route: with RL_RESULTS_TOPIC set a worker's rollout requests go to the env runner."""

from __future__ import annotations

from pathlib import Path

import orjson

from streamplane.config import Settings
from streamplane.platform import headers as h
from streamplane.platform.records import Records
from streamplane.platform.worker.features_processor import FeaturesProcessor
from streamplane.platform.worker.processor import ProcessorContext, WorkItem, load_processor
from streamplane.rl.envs.route import rollout_route

EVENT = orjson.dumps(
    {
        "event_id": "e1",
        "tenant": "acme",
        "user_id": "u1",
        "event_type": "view",
        "value": 1.5,
        "ts": 1000,
    }
)
ROLLOUT = orjson.dumps({"kind": "rl.rollout", "episodes": 1, "seed": 3})


def _settings(tmp_path: Path, results_topic: str | None) -> Settings:
    return Settings(
        rl_results_topic=results_topic,
        rl_buffer_dir=tmp_path,
        output_topic="features-out",
        dlq_topic="the-dlq",
        worker_engine="polars",
    )


def _run(settings: Settings) -> dict[str, list[bytes]]:
    processor = load_processor("features", settings)
    processor.open(ProcessorContext("features-out", "the-dlq", settings))
    records = Records("in", 0, [7, 8], [1000, 1000], [b"k", b"k"], [EVENT, ROLLOUT], {})
    written: dict[str, list[bytes]] = {}

    def emit(topic: str, key: bytes | None, value: bytes, headers: h.HeaderList) -> None:
        written.setdefault(topic, []).append(value)

    processor.process(WorkItem("task-1", "acme", 1, records), emit)
    processor.close()
    return written


def test_with_rl_on_rollouts_go_to_the_env_runner_and_events_to_features(
    tmp_path: Path,
) -> None:
    written = _run(_settings(tmp_path, "rl-results"))
    assert set(written) == {"features-out", "rl-results"}
    assert len(written["features-out"]) == 1
    transitions = [orjson.loads(v) for v in written["rl-results"]]
    assert transitions
    assert {t["episode_id"] for t in transitions} == {"in/0/8/0"}


def test_with_rl_off_the_worker_knows_no_rollout(tmp_path: Path) -> None:
    settings = _settings(tmp_path, None)
    assert type(load_processor("features", settings)) is FeaturesProcessor
    written = _run(settings)
    # The rollout request is just a malformed event to the feature transform.
    assert set(written) == {"features-out", "the-dlq"}
    assert written["the-dlq"] == [ROLLOUT]


def test_the_route_leaves_the_processor_alone_without_a_results_topic(tmp_path: Path) -> None:
    features = FeaturesProcessor(_settings(tmp_path, None))
    assert rollout_route(_settings(tmp_path, None), features) is features
    assert rollout_route(_settings(tmp_path, "rl-results"), features) is not features
