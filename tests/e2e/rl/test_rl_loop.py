"""The whole RL loop on the real broker, real workers, real Slurm and a real Dagster webserver.

rollout requests -> worker env runners -> RL_RESULTS_TOPIC -> buffer shards -> POST
/training/rl/start -> the trainer on Slurm -> COMPLETED with metrics -> rl_policy
materialized through Dagster -> lineage read back through the webserver's GraphQL API ->
the next rollouts act with the new checkpoint.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
from dagster import DagsterInstance, materialize

from streamplane.assets.rl import (
    RLResource,
    rl_policy,
    rl_policy_beats_random,
    rl_policy_evaluation,
    rl_replay_buffer,
)
from streamplane.config import RLSettings, Settings
from streamplane.platform import headers as h
from streamplane.platform.kafka import admin
from streamplane.rl.buffer.manifest import read_manifest
from streamplane.rl.produce import produce_rollouts
from streamplane.rl.slurm.jobs import JobState
from tests.rl_support.kafka_helpers import caught_up
from tests.support.deadline import wait_until
from tests.support.procs import REPO_ROOT, Processes, Stack, base_env, free_port
from tests.support.topics import read_all, unique_name

pytestmark = [pytest.mark.kafka, pytest.mark.slurm]

AUTH = {"Authorization": "Bearer test-token"}
ORDER = {"PENDING": 0, "RUNNING": 1, "COMPLETED": 2}
LINEAGE = """
{ assetNodes { assetKey { path } dependencyKeys { path } groupName } }
"""
LATEST = """
query ($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset { assetMaterializations(limit: 1) {
      runId metadataEntries { label ... on IntMetadataEntry { intValue }
                                    ... on TextMetadataEntry { text } } } }
  }
}
"""


def graphql(port: int, query: str, variables: dict[str, Any] | None = None) -> Any:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def test_rollouts_to_buffer_to_slurm_to_dagster(
    procs: Processes,
    stack: Stack,
    slurm_cluster: str,
    training_settings: RLSettings,
    tmp_path: Path,
) -> None:
    results = unique_name("rl-results")
    admin.ensure_topics(stack.conf, {stack.topics.input: 2, results: 2})
    training = training_settings.model_copy(
        update={"rl_results_topic": results, "rl_buffer_group": unique_name("rl-buffer")}
    )
    # The supervisor hosts the replay buffer and the training API; the worker's default
    # processor routes rollout requests to its env runner (RL_RESULTS_TOPIC is set).
    rl_env = {
        "RL_RESULTS_TOPIC": results,
        "RL_BUFFER_DIR": str(training.buffer_dir),
        "RL_POLICY_DIR": str(training.policy_dir),
        "RL_TRAINING_DIR": str(training.training_dir),
        "RL_BUFFER_GROUP": training.rl_buffer_group,
        "RL_BUFFER_SHARD_ROWS": str(training.rl_buffer_shard_rows),
        "RL_BUFFER_LINGER_S": str(training.rl_buffer_linger_s),
        "TRAINING_API_TOKEN": "test-token",
    }
    sup = procs.supervisor(stack.env(**rl_env))
    procs.worker(stack.env(SUPERVISOR_GRPC_ADDR=sup.grpc_addr, **rl_env))
    sup.wait_workers(1)
    settings = Settings(kafka_brokers=stack.bootstrap, input_topic=stack.topics.input)

    # 1. Rollout requests -> env runners -> transitions in RL_RESULTS_TOPIC.
    assert produce_rollouts(settings, 10, "balance", episodes=2, seed=1) == 10
    stack.wait_committed_at_end(120)
    transitions = read_all(stack.bootstrap, results)
    values = [orjson.loads(r.value or b"") for r in transitions]
    assert len({v["episode_id"] for v in values}) == 20
    assert {v["skill"] for v in values} == {"balance"}
    assert {v["policy_version"] for v in values} == {0}
    assert all(r.headers[h.SRC_TOPIC] == stack.topics.input.encode() for r in transitions)

    # 2. The supervisor's buffer takes every transition into shards.
    wait_until(lambda: caught_up(training.buffer_dir, stack.bootstrap, results), 60, 0.2)
    manifest = read_manifest(training.buffer_dir)
    assert manifest.transitions_by_skill() == {"balance": len(transitions)}

    # 3. POST start -> Slurm -> status through PENDING/RUNNING to COMPLETED with metrics.
    body = {"skill": "balance", "hyperparameters": {"steps": 500, "eval_episodes": 3}}
    code, reply = sup.post_json("/training/rl/start", body, headers=AUTH)
    assert code == 202, reply
    task = reply["task_id"]
    seen = [reply["state"]]

    def state_now() -> dict[str, Any]:
        code, status = sup.get_json(f"/training/rl/status/{task}", headers=AUTH)
        assert code == 200, status
        return status

    def finished() -> bool:
        state = state_now()["state"]
        if seen[-1] != state:
            seen.append(state)
        return JobState(state).finished

    wait_until(finished, 300, 0.1, message=lambda: f"states seen: {seen}")
    status = state_now()
    assert status["state"] == "COMPLETED", status["log_tail"]
    assert seen[0] == "PENDING"
    assert "RUNNING" in seen
    assert [ORDER[s] for s in seen] == sorted(ORDER[s] for s in seen)
    assert status["metrics"]["transitions"] == len(transitions)
    assert status["checkpoint"]["line"] == "balance"
    assert status["checkpoint"]["version"] == 1
    assert "supervisor_training_runs_total" in sup.metrics()

    # 4. The next rollouts act with the new checkpoint: the loop is closed.
    produce_rollouts(settings, 2, "balance", seed=99)
    stack.wait_committed_at_end(120)
    first = {(r.partition, r.offset) for r in transitions}
    newest = [r for r in read_all(stack.bootstrap, results) if (r.partition, r.offset) not in first]
    assert newest
    assert {orjson.loads(r.value or b"")["policy_version"] for r in newest} == {1}
    wait_until(lambda: caught_up(training.buffer_dir, stack.bootstrap, results), 60, 0.2)
    assert sup.terminate(60) == 0, sup.tail()

    # 5. rl_policy materialized through Dagster (on Slurm), lineage through GraphQL.
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    rl = RLResource(
        buffer_dir=str(training.buffer_dir),
        results_topic=results,
        policy_dir=str(training.policy_dir),
        training_dir=str(training.training_dir),
        poll_interval_s=0.5,
        job_timeout_s=300,
        evaluation_episodes=5,
    )
    with DagsterInstance.from_config(str(home)) as instance:
        result = materialize(
            [rl_replay_buffer, rl_policy, rl_policy_evaluation, rl_policy_beats_random],
            resources={"rl": rl},
            instance=instance,
            run_config={
                "ops": {
                    "rl_policy": {"config": {"skill": "balance", "steps": 500}},
                }
            },
        )
        assert result.success
        [policy] = result.asset_materializations_for_node("rl_policy")
        assert policy.metadata["state"].value == "COMPLETED"
        assert policy.metadata["version"].value == 2
        [evaluation] = result.asset_materializations_for_node("rl_policy_evaluation")
        assert (evaluation.metadata["line"].value, evaluation.metadata["version"].value) == (
            "balance",
            2,
        )
        job_id = policy.metadata["slurm_job_id"].value
        run_id = result.run_id

    port = free_port()
    env = base_env({"DAGSTER_HOME": str(home), **rl_env, "KAFKA_BROKERS": stack.bootstrap})
    log = tmp_path / "webserver.log"
    with log.open("wb") as out:
        webserver = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("dagster-webserver")),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-f",
                str(REPO_ROOT / "tests" / "rl_support" / "dagster_defs.py"),
            ],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def lineage() -> dict[str, list[str]] | None:
            if webserver.poll() is not None:
                raise AssertionError(f"webserver exited:\n{log.read_text()[-3000:]}")
            try:
                nodes = graphql(port, LINEAGE)["assetNodes"]
            except (OSError, KeyError, TypeError):
                return None
            return {
                n["assetKey"]["path"][0]: [d["path"][0] for d in n["dependencyKeys"]] for n in nodes
            }

        graph = wait_until(lineage, 120, 0.5, message=lambda: log.read_text()[-3000:])
        assert graph["rl_replay_buffer"] == ["rl_results"]
        assert graph["rl_policy"] == ["rl_replay_buffer"]
        assert graph["rl_policy_evaluation"] == ["rl_policy"]
        latest = graphql(port, LATEST, {"path": ["rl_policy"]})["assetOrError"]
        [materialization] = latest["assetMaterializations"]
        assert materialization["runId"] == run_id
        entries = {
            e["label"]: e.get("intValue", e.get("text")) for e in materialization["metadataEntries"]
        }
        assert entries["slurm_job_id"] == job_id
        assert entries["state"] == "COMPLETED"
    finally:
        webserver.terminate()
        try:
            webserver.wait(30)
        except subprocess.TimeoutExpired:
            webserver.kill()
            webserver.wait(30)
