"""A 1,000,000-record backlog and a slow worker: pending records and supervisor memory
stay bounded, because the supervisor stops taking records above MAX_PENDING_RECORDS
(librdkafka's bounded prefetch then stops fetching) and takes them again below the low
mark (MAX_PENDING_RECORDS // 2).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psutil
import pytest

from tests.support.audit import uncovered_below
from tests.support.procs import Processes, Stack, produce_demo
from tests.support.topics import read_all

pytestmark = pytest.mark.kafka

BACKLOG = 1_000_000
MAX_PENDING = 50_000
# One consume call takes up to this many records before the bound is checked
# (streamplane.platform.supervisor.source.CONSUME_BATCH).
CONSUME_BATCH = 2_000
# The bound this test states for the supervisor's resident memory under the backlog.
RSS_BOUND_MB = 300
SAMPLE_S = 25.0


@dataclass
class Samples:
    pending: list[int] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    paused: list[int] = field(default_factory=list)

    @property
    def pauses(self) -> int:
        """Times the paused gauge went from 0 to 1 between samples."""
        return sum(1 for a, b in zip(self.paused, self.paused[1:], strict=False) if a < b)

    @property
    def resumes(self) -> int:
        """Times the paused gauge went from 1 to 0 between samples."""
        return sum(1 for a, b in zip(self.paused, self.paused[1:], strict=False) if a > b)


def test_million_record_backlog_stays_bounded(
    procs: Processes, stack: Stack, record_property: pytest.RecordProperty
) -> None:
    started = time.monotonic()
    produce_demo(procs, stack, BACKLOG, partitions=6, timeout=240)
    produced_s = time.monotonic() - started
    ends = stack.end_offsets()
    assert sum(ends.values()) == BACKLOG

    sup = procs.supervisor(stack.env(MAX_PENDING_RECORDS=MAX_PENDING))
    procs.worker(
        stack.env(
            SUPERVISOR_GRPC_ADDR=sup.grpc_addr,
            MAX_INFLIGHT=4,
            WORKER_PROCESSOR="tests.support.processors:slow",
            SLOW_TASK_SECONDS="0.04",
        )
    )
    sup.wait_workers(1)
    process = psutil.Process(sup.pid)
    samples = Samples()
    stop_at = time.monotonic() + SAMPLE_S
    while time.monotonic() < stop_at:
        assert sup.alive(), sup.tail()
        samples.rss_mb.append(process.memory_info().rss / 2**20)
        samples.pending.append(int(sup.status()["pending_records"]))
        paused = sup.metric("supervisor_paused")
        assert paused is not None, "supervisor_paused missing from /metrics"
        samples.paused.append(int(paused))
        time.sleep(0.1)  # polling interval

    done = sup.records_done()
    report = (
        f"backlog: produced {BACKLOG} in {produced_s:.1f} s; over {SAMPLE_S:g} s: "
        f"max pending {max(samples.pending)}, max RSS {max(samples.rss_mb):.0f} MB, "
        f"pauses {samples.pauses}, resumes {samples.resumes}, records done {done}"
    )
    print(report)
    record_property("max_rss_mb", round(max(samples.rss_mb)))
    record_property("max_pending", max(samples.pending))

    assert max(samples.pending) <= MAX_PENDING + CONSUME_BATCH, report
    assert max(samples.rss_mb) <= RSS_BOUND_MB, report
    # The bound was reached (it is a backlog) and fetching both paused and resumed.
    assert max(samples.pending) >= MAX_PENDING, report
    assert samples.pauses >= 1, report
    assert samples.resumes >= 1, report
    assert "paused fetching" in sup.stderr()
    assert "resumed fetching" in sup.stderr()
    assert 0 < done < BACKLOG, report

    # Stop without draining the million: the final commit still passes no unwritten record.
    assert sup.terminate(timeout=90) == 0, sup.tail()
    committed = stack.committed()
    assert sum(committed.values()) > 0
    outputs = read_all(stack.bootstrap, stack.topics.output, timeout=120)
    dead = read_all(stack.bootstrap, stack.topics.dlq, timeout=60)
    gaps = uncovered_below(committed, [*outputs, *dead], stack.topics.input)
    assert not gaps, f"committed past unwritten records: {gaps}"
