"""The broker stops mid-stream (SIGTERM, or SIGKILL) and comes back on the same data dir and
port after the group's session timeout (issue 12.3): the supervisor rejoins, says it is
not ready until it holds partitions again, and the stream ends with nothing lost and
duplicates only above the offsets committed before the stop.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamplane.dev.broker import EmbeddedBroker
from tests.support.audit import assert_accounted, assert_committed_at_end, audit_topics
from tests.support.deadline import wait_until
from tests.support.procs import Processes, Stack, free_port, produce_demo
from tests.support.topics import FreshTopics

pytestmark = pytest.mark.kafka

# The supervisor's session timeout is 10 s (platform/kafka/config.py): down longer than
# that, the group forgets its member and the supervisor must rejoin, not only reconnect.
DOWN_S = 20


@pytest.fixture
def own_broker(kafka_bootstrap: str, tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of this test alone, on a fixed port so clients find it after a restart."""
    # kafka_bootstrap is requested so that a machine without java skips this test too.
    broker = EmbeddedBroker(tmp_path / "broker", port=free_port())
    broker.start(timeout=120)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_broker_restart_mid_stream_rejoins_and_loses_nothing(
    stop: str,
    procs: Processes,
    own_broker: EmbeddedBroker,
    fresh_topics: FreshTopics,
    record_property: pytest.RecordProperty,
) -> None:
    stack = Stack(own_broker.bootstrap, fresh_topics)
    count, partitions = 30_000, 3
    produce_demo(procs, stack, count, partitions)
    ends = stack.end_offsets()
    env = stack.env(BATCH_MAX_RECORDS=100, COMMIT_INTERVAL_MS=200)
    supervisor = procs.supervisor(env, name="supervisor")
    workers = [
        procs.worker(
            stack.env(
                SUPERVISOR_GRPC_ADDR=supervisor.grpc_addr,
                MAX_INFLIGHT=2,
                WORKER_PROCESSOR="tests.support.processors:slow",
                SLOW_TASK_SECONDS="0.02",
            ),
            name=f"worker-{i}",
        )
        for i in range(2)
    ]
    supervisor.wait_workers(2)
    wait_until(
        lambda: supervisor.records_done() >= count // 5 and stack.committed(),
        90,
        interval=0.05,
        message=lambda: f"no progress before the broker stop: {supervisor.status()}",
    )
    at_stop = stack.committed()
    if stop == "sigterm":
        own_broker.stop(timeout=60)
    else:
        own_broker.kill()
    assert sum(at_stop.values()) < count, "the stream was over before the broker stopped"

    # While the broker is away the supervisor loses its group: readiness must say so.
    wait_until(
        lambda: not supervisor.is_ready(),
        DOWN_S + 30,
        interval=0.2,
        message=lambda: f"still ready with the broker down: {supervisor.status()}",
    )
    time.sleep(DOWN_S)
    assert supervisor.alive(), supervisor.tail()
    own_broker.start(timeout=120)
    assert own_broker.bootstrap == stack.bootstrap

    supervisor.wait_ready(timeout=120)
    stack.wait_committed_at_end(240, ends)
    status = supervisor.status()
    assert sorted(status["assigned"]) == list(range(partitions)), status
    assert supervisor.terminate(timeout=60) == 0, supervisor.tail()
    assert_committed_at_end(stack.committed(), ends)
    for worker in workers:
        assert worker.alive(), worker.tail()
        assert worker.terminate(timeout=60) == 0, worker.tail()

    audit = audit_topics(stack.bootstrap, stack.topics.input, stack.topics.output, stack.topics.dlq)
    record_property("duplicates", audit.duplicates)
    # Nothing can commit while the broker is down, so a duplicate is at most a record above
    # the offsets committed just before the stop.
    reread = sum(end - at_stop.get(p, 0) for p, end in ends.items())
    print(f"broker {stop} + restart: re-read bound {reread}; {audit.summary()}")
    assert_accounted(audit, count, reread)
