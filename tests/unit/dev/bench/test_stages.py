"""The latency run's breakdown by stage, read from the fleet's /metrics text."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from streamplane.dev.bench.stages import read_buckets, since, stage_medians
from streamplane.platform.metrics import RECORD_AGE_BUCKETS


def _process(role: str) -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry()
    ages = Histogram(
        f"{role}_record_age_seconds",
        "test",
        ["stage"],
        buckets=RECORD_AGE_BUCKETS,
        registry=registry,
    )
    return registry, ages


def _text(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def test_medians_per_stage_over_every_process_in_stage_order() -> None:
    supervisor, sup_ages = _process("supervisor")
    worker, worker_ages = _process("worker")
    for _ in range(10):
        sup_ages.labels("consumed").observe(0.012)  # within (0.01, 0.015]
        sup_ages.labels("dispatched").observe(0.04)
        worker_ages.labels("received").observe(0.045)
    medians = stage_medians(read_buckets([_text(supervisor), _text(worker)]))
    assert list(medians) == ["consumed", "dispatched", "received", "written", "acked"]
    consumed = medians["consumed"]
    assert consumed is not None
    assert 10 <= consumed <= 15
    dispatched, received = medians["dispatched"], medians["received"]
    assert dispatched is not None
    assert received is not None
    assert 30 <= dispatched <= 50
    assert 30 <= received <= 50
    assert medians["written"] is None  # nothing observed
    assert medians["acked"] is None


def test_only_what_came_after_the_first_reading_counts() -> None:
    registry, ages = _process("supervisor")
    consumed = ages.labels("consumed")
    for _ in range(100):
        consumed.observe(2.0)  # the warm-up: slow
    before = read_buckets([_text(registry)])
    for _ in range(10):
        consumed.observe(0.004)
    median = stage_medians(since(before, read_buckets([_text(registry)])))["consumed"]
    assert median is not None
    assert 2 <= median <= 5


def test_an_age_past_the_last_bound_reads_as_that_bound() -> None:
    registry, ages = _process("worker")
    ages.labels("written").observe(10_000)
    assert (
        stage_medians(read_buckets([_text(registry)]))["written"] == RECORD_AGE_BUCKETS[-1] * 1000
    )


def test_other_metrics_are_ignored() -> None:
    registry = CollectorRegistry()
    Histogram("supervisor_task_seconds", "test", registry=registry).observe(1)
    assert read_buckets([_text(registry)]) == {}
