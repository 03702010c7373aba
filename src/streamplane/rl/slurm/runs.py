r"""Training runs: submit the trainer to Slurm, remember the task, report its status.

A task lives in ``<RL_TRAINING_DIR>/tasks/<task_id>/``: ``task.json`` (the request, the
Slurm job id, what has been seen of it), ``job.sh`` (the batch script, written by this
module: it only ``exec``\\ s the trainer with the arguments sbatch passes), ``train.log``
(the job's output) and ``result.json`` (the trainer's metrics, once it succeeds).

Submission order makes a failure leave nothing behind: the task folder is written, then
sbatch runs; if sbatch fails the folder is removed. Jobs are named ``sp-train-<task>``,
so a task whose record lacks a job id (a crash right after sbatch) finds its job by
name, and a second submission of the same task attaches to it instead.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamplane.config import RLSettings
from streamplane.rl import metrics as tm
from streamplane.rl.exceptions import (
    JobNotFound,
    SlurmError,
    SlurmUnavailable,
    TrainingError,
    TrainingTaskNotFound,
)
from streamplane.rl.slurm.client import SlurmClient
from streamplane.rl.slurm.jobs import JobInfo, JobSpec, JobState
from streamplane.rl.slurm.schema import TrainingRequest, TrainingStatus

logger = logging.getLogger(__name__)

TASK_FILE = "task.json"
SCRIPT_FILE = "job.sh"
LOG_FILE = "train.log"
RESULT_FILE = "result.json"
JOB_PREFIX = "sp-train-"
LOG_TAIL_BYTES = 8192

_TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}$")


def check_task_id(task_id: str) -> str:
    """Return ``task_id`` if it is a plain word (it names a folder and a Slurm job)."""
    if not _TASK_ID.match(task_id):
        raise TrainingTaskNotFound(f"{task_id!r} is not a task id")
    return task_id


@dataclass
class TaskRecord:
    """What ``task.json`` holds."""

    task_id: str
    group: str | None
    request: dict[str, Any]
    submitted_at: float
    job_id: int | None = None
    state: str = JobState.PENDING.value
    slurm_state: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: str | None = None
    reason: str | None = None
    counted: bool = False

    @property
    def job_name(self) -> str:
        """The Slurm job name."""
        return JOB_PREFIX + self.task_id

    @property
    def finished(self) -> bool:
        """Whether the job has ended."""
        return JobState(self.state).finished


class TrainingService:
    """Submits and follows training runs; thread-safe.

    Args:
        training: RL settings: buffer, checkpoint and task folders, partition, Python.
        slurm: The Slurm client.
        clock: Wall-clock seconds (timestamps in task records).
    """

    def __init__(
        self,
        training: RLSettings,
        slurm: SlurmClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._training = training
        self.slurm = slurm if slurm is not None else SlurmClient()
        self._clock = clock
        self._lock = threading.RLock()

    @property
    def _tasks_dir(self) -> Path:
        """``<RL_TRAINING_DIR>/tasks``; raises ConfigError when no folder is configured."""
        return self._training.training_dir / "tasks"

    # ------------------------------------------------------------------ submit

    def trainer_args(self, request: TrainingRequest, task_dir: Path) -> list[str]:
        """The trainer's argument list for ``request`` (what ``job.sh`` receives)."""
        hp = request.hyperparameters
        args = [
            "--buffer", str(self._training.buffer_dir),
            "--out", str(self._training.policy_dir),
            "--algo", request.algorithm,
            "--env", request.env,
            "--steps", str(hp.steps),
            "--batch-size", str(hp.batch_size),
            "--learning-rate", repr(hp.learning_rate),
            "--gamma", repr(hp.gamma),
            "--target-tau", repr(hp.target_tau),
            "--hidden", str(hp.hidden),
            "--layers", str(hp.layers),
            "--eval-episodes", str(hp.eval_episodes),
            "--seed", str(hp.seed),
            "--result", str(task_dir / RESULT_FILE),
        ]  # fmt: skip
        if request.skill is not None:
            args += ["--skill", request.skill]
        return args

    def job_spec(self, record: TaskRecord, request: TrainingRequest, task_dir: Path) -> JobSpec:
        """The Slurm job for a task."""
        res = request.resources
        export: dict[str, str | None] = {"PATH": None, "LANG": None}
        if res.gpus == 0:
            # CPU wheels only: stop JAX probing for accelerators it cannot use.
            export["JAX_PLATFORMS"] = "cpu"
        export["OMP_NUM_THREADS"] = str(res.cpus)
        return JobSpec(
            name=record.job_name,
            script=task_dir / SCRIPT_FILE,
            args=self.trainer_args(request, task_dir),
            workdir=task_dir,
            log=task_dir / LOG_FILE,
            cpus=res.cpus,
            gpus=res.gpus,
            memory_mb=res.memory_mb,
            time_limit_min=res.time_limit_minutes,
            partition=self._training.slurm_partition,
            export=export,
        )

    def submit(self, request: TrainingRequest, group: str | None = None) -> TaskRecord:
        """Submit a training run and return its task.

        With ``group`` (a plain word, such as a Dagster run's root id) the call is
        idempotent: when the group's newest task is unfinished or completed, that task is
        returned instead of submitting another; after a failure or a cancellation a new
        task is submitted.

        Raises:
            TrainingError: the environment is not allowed.
            SlurmUnavailable: Slurm cannot be reached; nothing was submitted.
            SlurmSubmitError: sbatch refused the job; nothing was submitted.
        """
        if request.env not in self._training.allowed_envs:
            raise TrainingError(f"env {request.env!r} is not allowed")
        with self._lock:
            if group is not None:
                check_task_id(group)
                previous = self._newest_in_group(group)
                if previous is not None:
                    previous = self._refresh(previous)
                    if previous.state != JobState.FAILED and previous.state != JobState.CANCELLED:
                        return previous
            task_id = f"{group}-{uuid.uuid4().hex[:8]}" if group else uuid.uuid4().hex
            record = TaskRecord(
                task_id=task_id,
                group=group,
                request=request.model_dump(),
                submitted_at=self._clock(),
            )
            task_dir = self._tasks_dir / task_id
            task_dir.mkdir(parents=True)
            try:
                self._write_script(task_dir / SCRIPT_FILE)
                self._save(record)
                record.job_id = self.slurm.submit(self.job_spec(record, request, task_dir))
            except BaseException:
                shutil.rmtree(task_dir, ignore_errors=True)
                raise
            self._save(record)
        tm.TRAINING_RUNS.labels("SUBMITTED").inc()
        self._set_active_gauge()
        logger.info(
            "training submitted",
            extra={"task": task_id, "job": record.job_id, "skill": request.skill},
        )
        return record

    def _write_script(self, path: Path) -> None:
        python = shlex.quote(str(self._training.rl_trainer_python))
        path.write_text(
            "#!/bin/bash\n"
            "# Written by streamplane: runs the RL trainer with the arguments sbatch passes.\n"
            "set -euo pipefail\n"
            f'exec {python} -m streamplane.rl.learner.trainer "$@"\n'
        )
        path.chmod(0o755)

    # ------------------------------------------------------------------ status

    def status(self, task_id: str) -> TrainingStatus:
        """The task's state, timings, metrics (once done) and the tail of its log.

        Raises:
            TrainingTaskNotFound: no such task.
            SlurmUnavailable: Slurm cannot be reached and the task is unfinished.
        """
        with self._lock:
            record = self._refresh(self.load(task_id))
        return self._to_status(record)

    def cancel(self, task_id: str) -> None:
        """Cancel the task's Slurm job."""
        record = self.load(task_id)
        if record.job_id is not None:
            self.slurm.cancel(record.job_id)

    def load(self, task_id: str) -> TaskRecord:
        """The stored record of ``task_id``.

        Raises:
            TrainingTaskNotFound: no such task.
        """
        path = self._tasks_dir / check_task_id(task_id) / TASK_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise TrainingTaskNotFound(f"no training task {task_id!r}") from exc
        except (OSError, ValueError) as exc:
            raise TrainingError(f"cannot read {path}: {exc}") from exc
        return TaskRecord(**data)

    def refresh_active(self) -> int:
        """Refresh every unfinished task (updates metrics); returns how many are active."""
        active = 0
        for record in self._records():
            if record.finished:
                continue
            try:
                with self._lock:
                    record = self._refresh(record)
            except SlurmUnavailable as exc:
                logger.warning("cannot refresh training task", extra={"error": str(exc)})
            active += 0 if record.finished else 1
        tm.TRAINING_ACTIVE.set(active)
        return active

    def result(self, task_id: str) -> dict[str, Any] | None:
        """The trainer's result JSON, once it has written one."""
        path = self._tasks_dir / check_task_id(task_id) / RESULT_FILE
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    # --------------------------------------------------------------- internals

    def _refresh(self, record: TaskRecord) -> TaskRecord:
        if record.finished:
            return record
        if record.job_id is None:
            found = self.slurm.find_active(record.job_name)
            if not found:
                return record
            record.job_id = found[0]
        try:
            info = self.slurm.job(record.job_id)
        except JobNotFound:
            info = JobInfo(record.job_id, JobState.FAILED, "UNKNOWN", reason="job not found")
        self._apply(record, info)
        self._save(record)
        return record

    def _apply(self, record: TaskRecord, info: JobInfo) -> None:
        record.state = info.state.value
        record.slurm_state = info.slurm_state
        record.started_at = _ts(info.start_time) if info.state != JobState.PENDING else None
        record.ended_at = _ts(info.end_time) if info.state.finished else None
        record.exit_code = info.exit_code
        record.reason = info.reason
        if info.state.finished and not record.counted:
            record.counted = True
            tm.TRAINING_RUNS.labels(info.state.value).inc()
            end = record.ended_at if record.ended_at is not None else self._clock()
            tm.TRAINING_DURATION.observe(max(end - record.submitted_at, 0.0))
            self._set_active_gauge()

    def _to_status(self, record: TaskRecord) -> TrainingStatus:
        result = self.result(record.task_id) if record.state == JobState.COMPLETED else None
        checkpoint: dict[str, Any] | None = None
        if result is not None:
            checkpoint = {
                k: result.get(k) for k in ("line", "version", "checkpoint") if k in result
            }
        queued = None
        if record.started_at is not None:
            queued = max(record.started_at - record.submitted_at, 0.0)
        elapsed = None
        if record.started_at is not None:
            end = record.ended_at if record.ended_at is not None else self._clock()
            elapsed = max(end - record.started_at, 0.0)
        return TrainingStatus(
            task_id=record.task_id,
            job_id=record.job_id,
            state=JobState(record.state),
            slurm_state=record.slurm_state,
            algorithm=str(record.request.get("algorithm", "dqn")),
            skill=record.request.get("skill"),
            submitted_at=record.submitted_at,
            started_at=record.started_at,
            ended_at=record.ended_at,
            queued_s=queued,
            elapsed_s=elapsed,
            exit_code=record.exit_code,
            reason=record.reason,
            metrics=_public_metrics(result) if result is not None else None,
            checkpoint=checkpoint,
            log_tail=_tail(self._tasks_dir / record.task_id / LOG_FILE),
        )

    def _save(self, record: TaskRecord) -> None:
        path = self._tasks_dir / record.task_id / TASK_FILE
        tmp = path.with_name(TASK_FILE + ".tmp")
        tmp.write_text(json.dumps(record.__dict__, indent=2))
        os.replace(tmp, path)

    def _records(self) -> list[TaskRecord]:
        try:
            names = sorted(os.listdir(self._tasks_dir))
        except FileNotFoundError:
            return []
        records = []
        for name in names:
            try:
                records.append(self.load(name))
            except (TrainingError, TypeError):
                continue
        return records

    def _newest_in_group(self, group: str) -> TaskRecord | None:
        mine = [r for r in self._records() if r.group == group]
        return max(mine, key=lambda r: r.submitted_at) if mine else None

    def _set_active_gauge(self) -> None:
        tm.TRAINING_ACTIVE.set(sum(1 for r in self._records() if not r.finished))


def _ts(value: Any) -> float | None:
    return value.timestamp() if value is not None else None


def _public_metrics(result: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "loss", "eval_mean_return", "eval_returns", "steps", "wall_time_s", "transitions",
        "episodes_in_buffer", "loss_curve", "algo", "env", "skill",
    )  # fmt: skip
    return {k: result[k] for k in keys if k in result}


def _tail(path: Path, limit: int = LOG_TAIL_BYTES) -> str:
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(size - limit, 0))
            return log.read().decode("utf-8", "replace")
    except OSError:
        return ""


__all__ = ["SlurmError", "TaskRecord", "TrainingService", "check_task_id"]
