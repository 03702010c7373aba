"""Nearest-rank percentiles of the bench's latency figures."""

from __future__ import annotations

import math

__all__ = ["percentile"]


def percentile(ordered: list[int], q: float) -> int | None:
    """The nearest-rank percentile of sorted values (None when there are none)."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(math.ceil(q / 100 * len(ordered)) - 1, 0))]
