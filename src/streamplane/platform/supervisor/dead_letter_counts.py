"""The supervisor's own dead letters counted by tenant and kind, for ``/v1/status``.

The supervisor dead-letters only records that exhausted their attempts (kind
``attempts`` and the like); workers write the rest and count them on their own
``/metrics`` (:mod:`streamplane.platform.worker.metrics_server`). Counts are Prometheus
counters (``supervisor_dead_lettered_total{kind}``,
``supervisor_dead_lettered_by_tenant_total{tenant, kind}``), read back here so that
``/v1/status`` and ``/metrics`` never disagree.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable

from prometheus_client import Counter

from streamplane.platform import metrics as m
from streamplane.platform.supervisor.dead_letters import DeadLetterWriter
from streamplane.platform.supervisor.tasks import Task

__all__ = [
    "TenantCountingDeadLetters",
    "count_by_tenant",
    "counter_values",
    "dead_letter_status",
]


def count_by_tenant(task: Task, kind: str) -> None:
    """Count the confirmed dead letters of `task` per tenant."""
    tenants = task.records.tenants or [task.tenant] * task.size
    for tenant, n in Tally(tenants).items():
        m.DEAD_LETTERED_BY_TENANT.labels(m.tenant_label(tenant), kind).inc(n)


class TenantCountingDeadLetters(DeadLetterWriter):
    """A :class:`DeadLetterWriter` that also counts confirmed letters per tenant and kind."""

    def write(
        self, task: Task, kind: str, reason: str, settle: Callable[[Task, bool], None]
    ) -> None:
        """As :meth:`DeadLetterWriter.write`; a confirmed write is counted per tenant."""

        def counted(done: Task, ok: bool) -> None:
            if ok:
                count_by_tenant(done, kind)
            settle(done, ok)

        super().write(task, kind, reason, counted)


def counter_values(counter: Counter, *labels: str) -> dict[tuple[str, ...], float]:
    """The ``_total`` samples of a labelled counter, by their label values."""
    values: dict[tuple[str, ...], float] = {}
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                values[tuple(sample.labels[name] for name in labels)] = sample.value
    return values


def dead_letter_status() -> dict[str, dict[str, int]]:
    """``{"by_kind": {...}, "by_tenant": {...}}`` of this supervisor's dead letters."""
    by_kind = {k: int(v) for (k,), v in counter_values(m.DEAD_LETTERED, "kind").items()}
    by_tenant: dict[str, int] = {}
    for (tenant, _kind), value in counter_values(
        m.DEAD_LETTERED_BY_TENANT, "tenant", "kind"
    ).items():
        by_tenant[tenant] = by_tenant.get(tenant, 0) + int(value)
    return {"by_kind": dict(sorted(by_kind.items())), "by_tenant": dict(sorted(by_tenant.items()))}
