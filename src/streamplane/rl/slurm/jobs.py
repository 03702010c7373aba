"""Slurm jobs as data: the normalized state, what Slurm reports, what to submit.

:func:`sbatch_argv` turns a :class:`JobSpec` into the exact argument list handed to
``sbatch``; :func:`normalize_state` maps Slurm's many state words onto the five the
training API reports. No command runs here (that is :mod:`.client`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from streamplane.rl.exceptions import SlurmSubmitError

#: A job name or partition: a plain word, safe on any command line.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


class JobState(enum.StrEnum):
    """A job's state as the training API reports it."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        """Whether the job has ended (it will not change state again)."""
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


_STATE_MAP = {
    "PENDING": JobState.PENDING,
    "CONFIGURING": JobState.PENDING,
    "REQUEUED": JobState.PENDING,
    "REQUEUE_HOLD": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "RESV_DEL_HOLD": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "SUSPENDED": JobState.RUNNING,
    "STOPPED": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "COMPLETED": JobState.COMPLETED,
    "CANCELLED": JobState.CANCELLED,
    "PREEMPTED": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED,
    "FAILED": JobState.FAILED,
    "TIMEOUT": JobState.FAILED,
    "NODE_FAIL": JobState.FAILED,
    "OUT_OF_MEMORY": JobState.FAILED,
    "BOOT_FAIL": JobState.FAILED,
    "DEADLINE": JobState.FAILED,
    "SPECIAL_EXIT": JobState.FAILED,
}


def normalize_state(slurm_state: str) -> JobState:
    """Map a Slurm state word (``CANCELLED by 0`` included) to a :class:`JobState`."""
    word = slurm_state.strip().split(" ")[0].rstrip("+").upper()
    return _STATE_MAP.get(word, JobState.FAILED if word else JobState.PENDING)


@dataclass(frozen=True)
class JobInfo:
    """What Slurm says about one job."""

    job_id: int
    state: JobState
    slurm_state: str
    name: str | None = None
    submit_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    exit_code: str | None = None
    reason: str | None = None
    source: str = "scontrol"


@dataclass(frozen=True)
class JobSpec:
    """One batch job: resources, the script, and the argument list it gets.

    Names and the partition must be plain words; ``args`` reach the script's ``"$@"``
    as separate arguments (sbatch passes them through without a shell).
    """

    name: str
    script: Path
    args: Sequence[str]
    workdir: Path
    log: Path
    cpus: int = 1
    gpus: int = 0
    memory_mb: int = 2048
    time_limit_min: int = 60
    partition: str | None = None
    #: ``--export``: names passed through from sbatch's environment, or NAME=value pairs.
    export: Mapping[str, str | None] = field(default_factory=dict)


def sbatch_argv(spec: JobSpec, sbatch: str = "sbatch") -> list[str]:
    """The exact argument list handed to sbatch for ``spec``.

    Raises:
        SlurmSubmitError: a name, the partition or an export entry is not a plain word.
    """
    for what, value in (("job name", spec.name), ("partition", spec.partition)):
        if value is not None and not SAFE_NAME.match(value):
            raise SlurmSubmitError(f"{what} {value!r} is not a plain word")
    export: list[str] = []
    for name, value in spec.export.items():
        if not re.match(r"^[A-Z_][A-Z0-9_]*$", name) or (
            value is not None and not re.match(r"^[A-Za-z0-9_.:/=\-]*$", value)
        ):
            raise SlurmSubmitError(f"--export entry {name!r} is not a plain NAME[=value]")
        export.append(name if value is None else f"{name}={value}")
    argv = [
        sbatch,
        "--parsable",
        f"--job-name={spec.name}",
        f"--chdir={spec.workdir}",
        f"--output={spec.log}",
        "--nodes=1",
        "--ntasks=1",
        f"--cpus-per-task={spec.cpus}",
        f"--mem={spec.memory_mb}M",
        f"--time={spec.time_limit_min}",
        # Never sbatch's default ALL: the submitting server's secrets stay with it.
        f"--export={','.join(export) if export else 'NONE'}",
    ]
    if spec.gpus:
        argv.append(f"--gres=gpu:{spec.gpus}")
    if spec.partition:
        argv.append(f"--partition={spec.partition}")
    argv.append(str(spec.script))
    argv.extend(spec.args)
    return argv
