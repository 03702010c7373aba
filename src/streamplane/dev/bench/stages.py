"""Where the latency run's time went: record ages by stage, from the fleet's /metrics.

The supervisor and each worker export histograms of a record's age at each stage
(`supervisor_record_age_seconds`, `worker_record_age_seconds`). The bench reads them
once the warm-up has drained and again at the end; the difference covers the measured
records only, and its median per stage, in stage order, shows where the time went.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from prometheus_client.parser import text_string_to_metric_families

# In the order a record passes them; the metric of each stage.
STAGES = (
    ("consumed", "supervisor_record_age_seconds"),
    ("dispatched", "supervisor_record_age_seconds"),
    ("received", "worker_record_age_seconds"),
    ("written", "worker_record_age_seconds"),
    ("acked", "supervisor_record_age_seconds"),
)
_METRICS = frozenset(metric for _, metric in STAGES)

# Per stage: cumulative count per bucket upper bound, summed over every process.
Buckets = dict[str, dict[float, float]]


def read_buckets(texts: Iterable[str]) -> Buckets:
    """The stage histograms' buckets in Prometheus text from one or more processes."""
    buckets: Buckets = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            if family.name not in _METRICS:
                continue
            for sample in family.samples:
                if not sample.name.endswith("_bucket"):
                    continue
                stage = buckets.setdefault(sample.labels["stage"], {})
                bound = float(sample.labels["le"])
                stage[bound] = stage.get(bound, 0.0) + sample.value
    return buckets


def since(before: Buckets, after: Buckets) -> Buckets:
    """What was observed between two readings."""
    return {
        stage: {bound: count - before.get(stage, {}).get(bound, 0.0) for bound, count in b.items()}
        for stage, b in after.items()
    }


def median_ms(buckets: Mapping[float, float]) -> float | None:
    """The median of a histogram, interpolated within its bucket; None when empty."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    half = total / 2
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= half:
            if math.isinf(bound):
                return round(lower * 1000, 1)  # past the last finite bound: its edge
            share = (half - below) / (count - below) if count > below else 1.0
            return round((lower + (bound - lower) * share) * 1000, 1)
        lower, below = bound, count
    return None


def stage_medians(buckets: Buckets) -> dict[str, float | None]:
    """Median age in ms at each stage, in stage order."""
    return {stage: median_ms(buckets.get(stage, {})) for stage, _ in STAGES}
