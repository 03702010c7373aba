"""Record ages by stage: where a record's latency goes (supervisor and worker /metrics)."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry, Histogram

from streamplane.platform import metrics as m
from streamplane.platform.supervisor.offsets import OffsetTracker

from .factories import make_task


@pytest.fixture
def stage() -> Histogram:
    return Histogram(
        "age_seconds", "test", buckets=m.RECORD_AGE_BUCKETS, registry=CollectorRegistry()
    )


def _count_and_sum(stage: Histogram) -> tuple[float, float]:
    samples = {s.name: s.value for metric in stage.collect() for s in metric.samples}
    return samples["age_seconds_count"], samples["age_seconds_sum"]


def test_the_age_is_now_minus_the_kafka_timestamp(stage: Histogram) -> None:
    m.observe_age(stage, int(time.time() * 1000) - 250)
    count, total = _count_and_sum(stage)
    assert count == 1
    assert 0.2 <= total < 5  # 250 ms, and whatever this test's own scheduling added


def test_a_record_without_a_timestamp_is_not_observed(stage: Histogram) -> None:
    m.observe_age(stage, -1)
    m.observe_age(stage, 0)
    assert _count_and_sum(stage) == (0, 0)


def test_a_timestamp_from_a_clock_ahead_counts_as_age_zero(stage: Histogram) -> None:
    m.observe_age(stage, int(time.time() * 1000) + 60_000)
    assert _count_and_sum(stage) == (1, 0)


def test_a_task_is_aged_by_its_first_record() -> None:
    tp = ("in", 0)
    task = make_task(tp, [7, 8], OffsetTracker())
    task.records.timestamps_ms[:] = [1_000, 900]
    assert task.first_timestamp_ms == 1_000
    empty = make_task(tp, [], OffsetTracker())
    assert empty.first_timestamp_ms == -1
