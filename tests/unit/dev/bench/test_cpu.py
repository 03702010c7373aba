"""CPU per record by role: which clock each role's figure runs on."""

from __future__ import annotations

import pytest

from streamplane.dev.bench.cpu import pipeline_us_per_record, projected_rate, us_per_record


def test_us_per_record_is_the_difference_over_the_records() -> None:
    assert us_per_record({"worker": 1.0}, {"worker": 3.0}, 1_000_000) == {"worker": 2.0}
    assert us_per_record({}, {"worker": 3.0}, 0) == {"worker": None}


def test_the_consuming_roles_count_from_the_supervisors_start_over_every_record() -> None:
    """The supervisor consumes while the workers start: a clock started when they are
    ready would leave those records' consumption out (all of them under a large bound)."""
    at_start = {"supervisor": 2.0, "broker": 10.0, "worker": 0.0}
    at_ready = {"supervisor": 3.0, "broker": 11.0, "worker": 1.0}
    at_end = {"supervisor": 6.0, "broker": 14.0, "worker": 9.0, "passthrough": 0.4}
    figures = pipeline_us_per_record(at_start, at_ready, at_end, timed=800_000, total=1_000_000)
    assert figures["supervisor"] == pytest.approx(4.0)  # 4 s over 1M, not 3 s over 800k
    assert figures["broker"] == pytest.approx(4.0)
    assert figures["worker"] == pytest.approx(10.0)  # 8 s over the 800k timed
    assert figures["passthrough"] == pytest.approx(0.5)


def test_the_projection_is_bounded_by_the_supervisor() -> None:
    assert projected_rate(2.0, 4.0) == 500_000
    assert projected_rate(1.0, 30.0) == 500_000  # 15 worker cores at 30 us each
    assert projected_rate(None, 4.0) is None
