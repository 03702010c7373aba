"""Process-wide tuning of the roles on the hot path (the supervisor and the workers).

CPython's cyclic garbage collector runs a collection every 700 net allocations of
container objects, and a full one whenever the long-lived generation grows by a
quarter. The hot roles allocate a few containers per record (a header list, its tuples,
a task's column lists) that reference counting frees at once, and they hold every
object of their imports and up to MAX_PENDING_RECORDS pending records. So the collector
ran about a thousand times per million records and rescanned all of that each time,
finding almost nothing: 0.7 s of the supervisor's CPU and 0.4-0.7 s of a worker's in a
1M-event `streamplane bench` (docs/performance.md).

Reference cycles are still collected, less often: the hot paths are kept free of them
(a fired DeliveryGroup drops its callback), and what cycles remain wait at most
``GEN0_THRESHOLD`` allocations.
"""

from __future__ import annotations

import gc
from typing import Final

# Net container allocations between young collections (CPython's default is 700).
# Measured: with this, the roles collect a handful of times per million records.
GEN0_THRESHOLD: Final = 50_000
GEN1_THRESHOLD: Final = 20
GEN2_THRESHOLD: Final = 100


def tune_gc() -> None:
    """Freeze what start-up built and make young collections rare.

    Call once, after imports and before the hot loop starts. ``gc.freeze`` moves every
    object alive now (modules, classes, functions, settings) to a generation the
    collector never scans again; they live as long as the process anyway.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
