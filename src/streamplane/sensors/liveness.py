"""``supervisor_liveness_sensor``: keeps ``FleetResource.supervisors`` supervisor runs alive.

Each supervisor run fills a numbered slot (tag ``streamplane/slot``). A tick marks failed
the started supervisor runs whose heartbeat stopped (their run worker died), then
requests a run for every slot no alive run fills. Launches are capped twice over: the run
key is unique per launch, and the run queue's tag concurrency limits (one run per slot
value, ``supervisors`` runs of role ``supervisor``; see ``docker/dagster/dagster.yaml``
and ``streamplane.dagster_dev``) hold any extra run in the queue, even when ticks overlap
or someone launches one by hand.
"""

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from streamplane.jobs import SLOT_TAG, supervisor_job
from streamplane.resources import FleetResource
from streamplane.sensors.runs import alive_runs, fail_silent_runs, run_slot

__all__ = ["LaunchCounter", "build_supervisor_liveness_sensor", "missing_slots"]


@dataclass(frozen=True)
class LaunchCounter:
    """The liveness sensor's cursor: launches so far, and a lineage id for run keys."""

    launches: int = 0
    epoch: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def to_json(self) -> str:
        """Serialize for ``SensorResult(cursor=...)``."""
        return json.dumps({"launches": self.launches, "epoch": self.epoch}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> "LaunchCounter":
        """Parse a cursor; a missing or unreadable one starts a new lineage."""
        try:
            raw = json.loads(text or "")
            return cls(launches=int(raw["launches"]), epoch=str(raw["epoch"]))
        except (ValueError, TypeError, KeyError):
            return cls()


def missing_slots(wanted: int, taken: Iterable[int | None]) -> list[int]:
    """Slots in ``range(wanted)`` to launch, given the slots of the alive runs.

    An alive run without a slot (launched by hand) still counts toward ``wanted``, so
    the total never exceeds it.
    """
    taken = list(taken)
    free = [slot for slot in range(wanted) if slot not in taken]
    return free[: max(wanted - len(taken), 0)]


def evaluate_liveness(context: SensorEvaluationContext, fleet: FleetResource) -> SensorResult:
    """One tick of the liveness sensor (see the module docstring)."""
    for run_id in fail_silent_runs(context.instance, "supervisor", fleet.heartbeat_timeout_s):
        context.log.warning(f"supervisor run {run_id} lost its heartbeat; marked failed")
    counter = LaunchCounter.from_json(context.cursor)
    alive = alive_runs(context.instance, "supervisor")
    slots = missing_slots(fleet.supervisors, (run_slot(run) for run in alive))
    requests = [
        RunRequest(
            run_key=f"supervisor-{counter.epoch}-{counter.launches + i + 1}",
            job_name=supervisor_job.name,
            run_config={"ops": {"run_supervisor": {"config": {"slot": slot}}}},
            tags={SLOT_TAG: str(slot)},
        )
        for i, slot in enumerate(slots)
    ]
    cursor = LaunchCounter(launches=counter.launches + len(requests), epoch=counter.epoch)
    skip = None if requests else f"{len(alive)} of {fleet.supervisors} supervisor runs alive"
    return SensorResult(run_requests=requests, skip_reason=skip, cursor=cursor.to_json())


def build_supervisor_liveness_sensor(interval_s: int = 30) -> SensorDefinition:
    """The liveness sensor, ticking every ``interval_s`` seconds, on by default."""

    @sensor(
        name="supervisor_liveness_sensor",
        minimum_interval_seconds=interval_s,
        jobs=[supervisor_job],
        default_status=DefaultSensorStatus.RUNNING,
        description="Keeps the configured number of supervisor runs alive; relaunches dead ones.",
    )
    def supervisor_liveness_sensor(
        context: SensorEvaluationContext, fleet: FleetResource
    ) -> SensorResult:
        return evaluate_liveness(context, fleet)

    return supervisor_liveness_sensor
