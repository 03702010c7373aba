"""``dagster job launch -w workspace.yaml -j worker_job --config-json ...`` from a shell.

The CLI enqueues the run on the stack's instance; the daemon launches it, the worker
connects to the sensor-started supervisor (or keeps dialing), idles, exits: success. A
supervisor launched by hand for a slot that is taken stays in the queue: the tag
concurrency limits make an extra supervisor impossible, whoever asks for it.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from dagster import DagsterRunStatus

from tests.dagster.services import BIN, WORKSPACE, DagsterStack
from tests.support.deadline import wait_until

pytestmark = pytest.mark.kafka


def test_dagster_job_launch_runs_a_worker(dagster_stack: DagsterStack) -> None:
    run_id = str(uuid.uuid4())
    config = {
        "ops": {
            "run_worker": {
                "config": {"max_inflight": 2, "engine": "polars", "idle_exit_seconds": 3}
            }
        }
    }
    result = dagster_stack.command(
        [
            str(BIN / "dagster"),
            "job",
            "launch",
            "-w",
            str(WORKSPACE),
            "-j",
            "worker_job",
            "--config-json",
            json.dumps(config),
            "--run-id",
            run_id,
            "--tags",
            json.dumps({"streamplane/test": "cli"}),
        ]
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]

    run = dagster_stack.run(run_id)
    assert run.job_name == "worker_job"
    assert run.tags["streamplane/role"] == "worker"  # the job's tags travel with the run
    assert run.tags["streamplane/test"] == "cli"
    assert run.run_config == config

    finished = wait_until(
        lambda: (
            dagster_stack.run(run_id).status
            if dagster_stack.run(run_id).status
            in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE)
            else None
        ),
        180,
        interval=1,
        message=lambda: f"run {run_id} never finished\n{dagster_stack.report()}",
    )
    assert finished == DagsterRunStatus.SUCCESS


def test_an_extra_supervisor_stays_queued(dagster_stack: DagsterStack) -> None:
    """The run queue's tag limits hold a second supervisor for slot 0 back."""
    wait_until(
        lambda: dagster_stack.runs(
            tags={"streamplane/role": "supervisor"}, statuses=[DagsterRunStatus.STARTED]
        ),
        180,
        interval=1,
        message=lambda: f"no supervisor running\n{dagster_stack.report()}",
    )
    run_id = str(uuid.uuid4())
    result = dagster_stack.command(
        [
            str(BIN / "dagster"),
            "job",
            "launch",
            "-w",
            str(WORKSPACE),
            "-j",
            "supervisor_job",
            "--run-id",
            run_id,
            "--tags",
            json.dumps({"streamplane/slot": "0"}),
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # The daemon looks at the queue every 2 s: over 15 s it declines the run many times.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert dagster_stack.run(run_id).status == DagsterRunStatus.QUEUED
        time.sleep(1)
    with dagster_stack.instance() as instance:
        instance.run_coordinator.cancel_run(run_id)
    assert dagster_stack.run(run_id).status == DagsterRunStatus.CANCELED
