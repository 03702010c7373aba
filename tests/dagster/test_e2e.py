"""The Dagster face end to end: real broker, ``dagster-webserver``, ``dagster-daemon``.

The stack starts on a 20k-record backlog (see ``services.py``). The sensors must start
the supervisor and the worker runs, the lag must drain to zero, the workers must exit
by idleness with success while the supervisor stays up; a supervisor run terminated from
the command line must drain and be replaced, and one whose run worker is killed must be
detected, marked failed and replaced; and no record may be lost.
"""

from __future__ import annotations

import os
import re
import signal

import psutil
import pytest
from dagster import AssetKey, DagsterRun, DagsterRunStatus

from tests.dagster.services import DagsterStack
from tests.support.audit import audit_topics
from tests.support.deadline import wait_until

pytestmark = pytest.mark.kafka

LAG_SENSOR = "kafka_lag_sensor"
LIVENESS_SENSOR = "supervisor_liveness_sensor"
STARTED = [DagsterRunStatus.STARTED]
FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
CHILD_PID = re.compile(r"started streamplane supervisor \(pid (\d+)\)")


def started_supervisor(stack: DagsterStack, not_in: set[str]) -> DagsterRun | None:
    runs = stack.sensor_runs(LIVENESS_SENSOR, STARTED)
    fresh = [r for r in runs if r.run_id not in not_in]
    return fresh[0] if fresh else None


def run_messages(stack: DagsterStack, run_id: str) -> list[str]:
    with stack.instance() as instance:
        return [entry.message or "" for entry in instance.all_logs(run_id)]


def supervisor_child_pid(stack: DagsterStack, run_id: str) -> int:
    """The pid of the ``streamplane supervisor`` process a run's op started."""

    def find() -> int | None:
        for message in run_messages(stack, run_id):
            match = CHILD_PID.search(message)
            if match:
                return int(match.group(1))
        return None

    return wait_until(find, 60, interval=0.5, message=f"run {run_id} logged no child pid")


def lag_observations(stack: DagsterStack) -> list[int]:
    """total_lag of every raw_events observation so far, oldest first."""
    with stack.instance() as instance:
        records = instance.fetch_observations(AssetKey("raw_events"), limit=1000).records
    values = [
        int(r.asset_observation.metadata["total_lag"].value)  # type: ignore[arg-type]
        for r in records
        if r.asset_observation is not None
    ]
    return list(reversed(values))


def terminate_from_cli(stack: DagsterStack, run_id: str) -> str:
    """``dagster-graphql --remote``: terminate a run the way an operator's script would."""
    mutation = (
        f'mutation {{ terminateRun(runId: "{run_id}") {{ __typename '
        "... on TerminateRunFailure { message } ... on PythonError { message } } }"
    )
    result = stack.command(
        [str(stack_bin("dagster-graphql")), "--remote", stack.url, "-t", mutation]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def stack_bin(name: str) -> str:
    from tests.dagster.services import BIN

    return str(BIN / name)


def test_lag_drives_workers_and_liveness_keeps_the_supervisor(
    dagster_stack: DagsterStack, record_property: pytest.RecordProperty
) -> None:
    stack = dagster_stack
    report = stack.report

    # 1. The liveness sensor starts the supervisor; the lag sensor starts workers.
    supervisor = wait_until(
        lambda: started_supervisor(stack, set()),
        180,
        interval=1,
        message=lambda: f"no supervisor run started\n{report()}",
    )
    wait_until(
        lambda: stack.sensor_runs(LAG_SENSOR),
        120,
        interval=1,
        message=lambda: f"the backlog launched no worker run\n{report()}",
    )

    # 2. The lag drains to zero.
    wait_until(
        lambda: stack.total_lag() == 0,
        300,
        interval=2,
        message=lambda: f"lag still {stack.total_lag()}\n{report()}",
    )

    # 3. Worker runs exit by idleness, with success; never more than max_workers at once.
    def workers_done() -> list[DagsterRun] | None:
        runs = stack.sensor_runs(LAG_SENSOR)
        return runs if runs and all(r.status in FINISHED for r in runs) else None

    workers = wait_until(
        workers_done, 180, interval=2, message=lambda: f"worker runs still running\n{report()}"
    )
    assert all(r.status == DagsterRunStatus.SUCCESS for r in workers), [
        (r.run_id, r.status) for r in workers
    ]
    for run in workers:
        assert any("exited cleanly" in m for m in run_messages(stack, run.run_id))
    record_property("worker_runs", len(workers))

    # 4. The supervisor stayed up through all of it.
    assert stack.run(supervisor.run_id).status == DagsterRunStatus.STARTED

    # 5. Every tick recorded the lag on raw_events: a backlog first, zero at the end.
    lags = lag_observations(stack)
    assert len(lags) >= 2, lags
    assert max(lags) > 0, lags
    assert lags[-1] == 0, lags

    # 6. Terminated from the command line: it drains, the run ends canceled, and the
    #    liveness sensor starts a replacement.
    output = terminate_from_cli(stack, supervisor.run_id)
    assert "TerminateRunSuccess" in output, output
    wait_until(
        lambda: stack.run(supervisor.run_id).status == DagsterRunStatus.CANCELED,
        120,
        interval=1,
        message=lambda: f"terminated supervisor not canceled\n{report()}",
    )
    messages = run_messages(stack, supervisor.run_id)
    assert any("drained and exited with status 0" in m for m in messages), messages[-20:]
    replacement = wait_until(
        lambda: started_supervisor(stack, {supervisor.run_id}),
        180,
        interval=1,
        message=lambda: f"no replacement supervisor\n{report()}",
    )
    assert replacement.tags["streamplane/slot"] == "0"

    # 7. A killed run worker is detected and the run marked failed (by the code server
    #    that launched it, which sees its process die; were that server gone too, the
    #    sensors' heartbeat check would, see test_sensors), then replaced.
    child = supervisor_child_pid(stack, replacement.run_id)
    run_worker = psutil.Process(child).ppid()
    os.kill(run_worker, signal.SIGKILL)
    wait_until(
        lambda: stack.run(replacement.run_id).status == DagsterRunStatus.FAILURE,
        180,
        interval=1,
        message=lambda: f"killed run not marked failed\n{report()}",
    )
    messages = run_messages(stack, replacement.run_id)
    assert any("Run execution process" in m or "no heartbeat" in m for m in messages), messages[
        -10:
    ]
    third = wait_until(
        lambda: started_supervisor(stack, {supervisor.run_id, replacement.run_id}),
        180,
        interval=1,
        message=lambda: f"no supervisor after the kill\n{report()}",
    )
    assert third.run_id not in {supervisor.run_id, replacement.run_id}
    # The orphaned supervisor got SIGTERM from the kernel when its run worker died.
    wait_until(
        lambda: not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie",
        60,
        message="the killed run's supervisor outlived it",
    )

    # 8. Nothing lost: every input record is in the output or dead-letter topic.
    topics = stack.kafka.topics
    audit = audit_topics(stack.bootstrap, topics.input, topics.output, topics.dlq)
    assert len(audit.inputs) == stack.produced
    assert audit.lost == [], audit.summary()
    assert audit.bogus == [], audit.summary()
    record_property("audit", audit.summary())
