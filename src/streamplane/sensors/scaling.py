"""How many worker runs the lag asks for, and which partitions are stuck rather than behind.

Pure logic, no Dagster and no Kafka: the lag sensor reads offsets with the admin client
and hands them here, with the cursor of the previous tick.

A partition is *stuck* when it has lag, its committed offset has stood still for
``stuck_after_ticks`` consecutive ticks, and in each of those ticks the group committed
progress on some other partition (so the group is alive and acking, just not there: a
poison record, a hung task, a paused partition). A stuck partition is reported and its
lag is left out of scaling: more workers would not move it, and KEDA's Kafka scaler,
which scales to the maximum on one such partition, wastes the whole fleet on it. A tick
where nothing advanced anywhere (no workers yet, say) is no evidence either way, so a
partition's count of still ticks neither grows nor resets then.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LagCursor", "ScalingDecision", "ScalingPolicy", "decide", "desired_workers"]

NEVER_COMMITTED = -1
"""Stands for "no committed offset" in the cursor, so a first commit counts as progress."""


@dataclass(frozen=True)
class ScalingPolicy:
    """The fleet's scaling knobs (see ``FleetResource`` for their meaning)."""

    min_workers: int
    max_workers: int
    lag_per_worker: int
    activation_lag: int
    stuck_after_ticks: int


@dataclass(frozen=True)
class LagCursor:
    """What one lag tick remembers for the next.

    Attributes:
        committed: Committed offset per partition at the last tick (``NEVER_COMMITTED``
            where the group had none); empty before the first tick.
        still_ticks: Per lagging partition, consecutive ticks its committed offset stood
            still while other partitions advanced.
        launches: Worker runs launched so far; each new run's ``run_key`` counts on from it.
        epoch: Random id of this cursor's lineage, part of every run key, so a cursor
            reset in the UI starts new keys instead of colliding with used ones (which
            Dagster would silently skip).
        traffic: The lag sensor's throughput and dead-letter readings of the last tick
            (:class:`streamplane.sensors.traffic.Traffic`, as a dict); scaling ignores it.
    """

    committed: dict[int, int] = field(default_factory=dict)
    still_ticks: dict[int, int] = field(default_factory=dict)
    launches: int = 0
    epoch: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    traffic: dict[str, Any] = field(default_factory=dict)

    def run_key(self, launch_number: int) -> str:
        """The run key of this lineage's ``launch_number``-th worker run."""
        return f"worker-{self.epoch}-{launch_number}"

    def to_json(self) -> str:
        """Serialize for ``SensorResult(cursor=...)`` (partitions as string keys)."""
        raw: dict[str, Any] = {
            "committed": {str(p): o for p, o in sorted(self.committed.items())},
            "still_ticks": {str(p): n for p, n in sorted(self.still_ticks.items())},
            "launches": self.launches,
            "epoch": self.epoch,
        }
        if self.traffic:
            raw["traffic"] = self.traffic
        return json.dumps(raw, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> LagCursor:
        """Parse a cursor; a missing or unreadable one starts afresh (first tick)."""
        if not text:
            return cls()
        try:
            raw: Any = json.loads(text)
            return cls(
                committed=_int_map(raw.get("committed", {})),
                still_ticks=_int_map(raw.get("still_ticks", {})),
                launches=int(raw.get("launches", 0)),
                epoch=str(raw["epoch"]),
                traffic=dict(raw.get("traffic") or {}),
            )
        except (ValueError, TypeError, AttributeError, KeyError):
            return cls()


@dataclass(frozen=True)
class ScalingDecision:
    """The outcome of one tick.

    Attributes:
        total_lag: Lag over all partitions.
        stuck: Lag of each stuck partition (left out of ``effective_lag``).
        effective_lag: The lag scaling acts on.
        desired: Worker runs wanted.
        active: Worker runs already queued, starting or running.
        launch: New worker runs to request now.
        cursor: The cursor for the next tick.
    """

    total_lag: int
    stuck: dict[int, int]
    effective_lag: int
    desired: int
    active: int
    launch: int
    cursor: LagCursor

    def summary(self) -> str:
        """One line for the tick's skip reason or log."""
        text = (
            f"lag {self.total_lag} (scaling on {self.effective_lag}); "
            f"workers wanted {self.desired}, active {self.active}, launching {self.launch}"
        )
        if self.stuck:
            text += f"; stuck partitions (lag left out): {_describe(self.stuck)}"
        return text


def desired_workers(effective_lag: int, policy: ScalingPolicy) -> int:
    """``clamp(ceil(lag / lag_per_worker), min, max)``; ``min`` at or below activation."""
    if effective_lag <= policy.activation_lag:
        return min(policy.min_workers, policy.max_workers)
    wanted = math.ceil(effective_lag / policy.lag_per_worker)
    return min(max(wanted, policy.min_workers), policy.max_workers)


def decide(
    previous: LagCursor,
    committed: Mapping[int, int],
    lag: Mapping[int, int],
    active: int,
    policy: ScalingPolicy,
) -> ScalingDecision:
    """Decide one tick from the group's committed offsets and lag per partition.

    Args:
        previous: The cursor of the previous tick.
        committed: Committed offset per partition (absent: never committed).
        lag: Lag per partition; every partition of the topic.
        active: Worker runs queued, starting or running: launched runs still in the queue
            count, so a tick never launches what an earlier one already asked for.
        policy: The scaling knobs.
    """
    now = {p: committed.get(p, NEVER_COMMITTED) for p in lag}
    still = _still_ticks(previous, now, lag)
    stuck = {p: lag[p] for p, n in still.items() if n >= policy.stuck_after_ticks}
    total = sum(lag.values())
    effective = total - sum(stuck.values())
    desired = desired_workers(effective, policy)
    launch = max(desired - active, 0)
    cursor = LagCursor(
        committed=now,
        still_ticks=still,
        launches=previous.launches + launch,
        epoch=previous.epoch,
        traffic=previous.traffic,
    )
    return ScalingDecision(
        total_lag=total,
        stuck=stuck,
        effective_lag=effective,
        desired=desired,
        active=active,
        launch=launch,
        cursor=cursor,
    )


def _still_ticks(
    previous: LagCursor, now: Mapping[int, int], lag: Mapping[int, int]
) -> dict[int, int]:
    """Per lagging partition, the new count of ticks standing still while others moved."""
    advanced = {
        p for p, offset in now.items() if p in previous.committed and offset > previous.committed[p]
    }
    counts: dict[int, int] = {}
    for partition, behind in lag.items():
        standing = partition in previous.committed and partition not in advanced
        if behind <= 0 or not standing:
            continue
        before = previous.still_ticks.get(partition, 0)
        counts[partition] = before + 1 if advanced - {partition} else before
    return {p: n for p, n in counts.items() if n > 0}


def _int_map(raw: Mapping[str, Any]) -> dict[int, int]:
    return {int(k): int(v) for k, v in raw.items()}


def _describe(stuck: Mapping[int, int]) -> str:
    return ", ".join(f"partition {p} (lag {n})" for p, n in sorted(stuck.items()))
