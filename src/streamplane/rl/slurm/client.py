"""A small Slurm client: submit with ``sbatch``, follow with ``squeue``/``scontrol``, cancel.

Every command runs from an argument list (never a shell), through one seam,
:class:`CommandRunner`, which tests replace. Failures are translated here: a missing
command or a controller that does not answer becomes :class:`SlurmUnavailable`, a
refused submission :class:`SlurmSubmitError`, an unknown job :class:`JobNotFound`.

Job state comes from ``scontrol show job`` while Slurm remembers the job (``MinJobAge``
seconds after it ends), then from ``sacct`` where accounting is on, then from the
``jobcomp/filetxt`` log. States are normalized to PENDING, RUNNING, COMPLETED, FAILED
and CANCELLED; Slurm's own word is kept in :attr:`JobInfo.slurm_state`.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from streamplane.rl.exceptions import (
    JobNotFound,
    SlurmError,
    SlurmSubmitError,
    SlurmUnavailable,
)
from streamplane.rl.slurm.jobs import (
    SAFE_NAME,
    JobInfo,
    JobSpec,
    normalize_state,
    sbatch_argv,
)

INSTALL_HINT = "install Slurm (Debian: run scripts/slurm-setup.sh as root)"
DEFAULT_JOBCOMP_LOG = Path("/var/log/slurm/jobcomp.log")

# sbatch retries on its own while the controller is away; past this we stop waiting and
# look for the job by name before deciding whether it was submitted.
SUBMIT_TIMEOUT_S = 60.0
# Queries are cheap; one that takes this long means the controller is not answering.
QUERY_TIMEOUT_S = 20.0

_UNREACHABLE = (
    "unable to contact slurm controller",
    "slurm controller not responding",
    "connection refused",
    "socket timed out",
    "is down",
    "zero bytes were transmitted",
    "communication connection failure",
)


@dataclass(frozen=True)
class CommandResult:
    """Exit status and output of one command."""

    returncode: int
    stdout: str
    stderr: str


class CommandRunner(Protocol):
    """Runs one command from an argument list; the seam tests replace."""

    def __call__(self, argv: Sequence[str], timeout: float) -> CommandResult:
        """Run ``argv`` without a shell.

        Raises FileNotFoundError if the program is missing, subprocess.TimeoutExpired if
        it runs past ``timeout``.
        """
        ...


def run_command(argv: Sequence[str], timeout: float) -> CommandResult:
    """The real runner: ``subprocess.run`` without a shell."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    return CommandResult(done.returncode, done.stdout, done.stderr)


class SlurmClient:
    """Talks to one Slurm cluster through its commands.

    Args:
        runner: Runs commands (tests pass a fake).
        clock: Monotonic seconds, for :meth:`wait`.
        sleep: Sleeps between polls in :meth:`wait`.
        jobcomp_log: The ``jobcomp/filetxt`` log (``JobCompLoc``), for jobs Slurm has
            forgotten.
    """

    def __init__(
        self,
        runner: CommandRunner = run_command,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jobcomp_log: Path = DEFAULT_JOBCOMP_LOG,
    ) -> None:
        self._run = runner
        self._clock = clock
        self._sleep = sleep
        self._jobcomp_log = jobcomp_log

    # ----------------------------------------------------------------------- commands

    def _call(self, argv: Sequence[str], timeout: float = QUERY_TIMEOUT_S) -> CommandResult:
        try:
            return self._run(argv, timeout)
        except FileNotFoundError as exc:
            raise SlurmUnavailable(f"{argv[0]} not found: {INSTALL_HINT}") from exc
        except subprocess.TimeoutExpired as exc:
            raise SlurmUnavailable(f"{argv[0]} did not answer within {timeout:g} s") from exc
        except OSError as exc:
            raise SlurmUnavailable(f"cannot run {argv[0]}: {exc}") from exc

    def ping(self) -> None:
        """Check that the controller answers.

        Raises:
            SlurmUnavailable: it does not (or Slurm is not installed).
        """
        result = self._call(["scontrol", "ping"])
        text = (result.stdout + result.stderr).strip()
        if result.returncode != 0 or " is UP" not in text:
            raise SlurmUnavailable(f"slurmctld is not reachable: {text or 'no answer'}")

    def submit(self, spec: JobSpec) -> int:
        """Submit ``spec`` and return the job id.

        Idempotent by name: if an unfinished job with ``spec.name`` exists it is
        returned instead (names carry a unique task id, so a retry after an unclear
        failure finds the first submission).

        Raises:
            SlurmUnavailable: the controller is unreachable; nothing was submitted.
            SlurmSubmitError: sbatch refused the job.
        """
        argv = sbatch_argv(spec)
        self.ping()
        existing = self.find_active(spec.name)
        if existing:
            return existing[0]
        try:
            result = self._call(argv, SUBMIT_TIMEOUT_S)
        except SlurmUnavailable:
            # A timeout leaves us unsure; the name tells whether the job got in.
            found = self._find_quietly(spec.name)
            if found:
                return found[0]
            raise
        if result.returncode != 0:
            message = _first_error(result.stderr or result.stdout)
            if _unreachable(message):
                raise SlurmUnavailable(f"sbatch: {message}")
            raise SlurmSubmitError(f"sbatch refused the job: {message}")
        first = result.stdout.strip().split(";")[0]
        if not first.isdigit():
            raise SlurmError(f"sbatch printed no job id: {result.stdout.strip()!r}")
        return int(first)

    def find_active(self, name: str) -> list[int]:
        """Ids of the pending or running jobs named ``name`` (oldest first)."""
        if not SAFE_NAME.match(name):
            raise SlurmError(f"job name {name!r} is not a plain word")
        result = self._call(["squeue", "-h", f"--name={name}", "-o", "%i"])
        if result.returncode != 0:
            message = _first_error(result.stderr)
            if _unreachable(message):
                raise SlurmUnavailable(f"squeue: {message}")
            raise SlurmError(f"squeue failed: {message}")
        return sorted(int(line) for line in result.stdout.split() if line.strip().isdigit())

    def _find_quietly(self, name: str) -> list[int]:
        try:
            return self.find_active(name)
        except SlurmError:
            return []

    def job(self, job_id: int) -> JobInfo:
        """What Slurm knows about ``job_id``.

        Raises:
            SlurmUnavailable: the controller is unreachable.
            JobNotFound: neither scontrol, sacct nor the jobcomp log knows the job.
        """
        result = self._call(["scontrol", "show", "job", "-o", str(int(job_id))])
        if result.returncode == 0 and "JobId=" in result.stdout:
            return _parse_scontrol(job_id, result.stdout)
        message = _first_error(result.stderr or result.stdout)
        if _unreachable(message):
            raise SlurmUnavailable(f"scontrol: {message}")
        found = self._from_sacct(job_id) or self._from_jobcomp(job_id)
        if found is None:
            raise JobNotFound(f"Slurm knows no job {job_id} ({message or 'no record'})")
        return found

    def cancel(self, job_id: int) -> None:
        """``scancel`` the job (a finished job is left as it is).

        Raises:
            SlurmUnavailable: the controller is unreachable.
        """
        result = self._call(["scancel", str(int(job_id))])
        message = _first_error(result.stderr)
        if result.returncode != 0 and _unreachable(message):
            raise SlurmUnavailable(f"scancel: {message}")

    def wait(
        self,
        job_id: int,
        timeout: float,
        poll_s: float = 2.0,
        on_poll: Callable[[JobInfo], None] | None = None,
    ) -> JobInfo:
        """Poll until the job has finished and return its final info.

        ``on_poll`` sees every answer (for progress logs). Transient Slurm errors are
        retried until the deadline.

        Raises:
            SlurmUnavailable: the deadline passed while Slurm could not be reached.
            TimeoutError: the deadline passed while the job was still unfinished.
        """
        deadline = self._clock() + timeout
        while True:
            try:
                info = self.job(job_id)
            except SlurmUnavailable:
                if self._clock() >= deadline:
                    raise
                self._sleep(poll_s)
                continue
            if on_poll is not None:
                on_poll(info)
            if info.state.finished:
                return info
            if self._clock() >= deadline:
                raise TimeoutError(f"Slurm job {job_id} still {info.state} after {timeout:g} s")
            self._sleep(poll_s)

    # ------------------------------------------------------------------ fallbacks

    def _from_sacct(self, job_id: int) -> JobInfo | None:
        try:
            result = self._call(
                [
                    "sacct",
                    "-n",
                    "-P",
                    "-X",
                    "-j",
                    str(int(job_id)),
                    "-o",
                    "JobID,JobName,State,Submit,Start,End,ExitCode",
                ]
            )
        except SlurmUnavailable:
            return None
        if result.returncode != 0:
            return None  # accounting storage disabled: the jobcomp log may know
        for line in result.stdout.splitlines():
            parts = line.split("|")
            if len(parts) == 7 and parts[0] == str(job_id):
                return JobInfo(
                    job_id=job_id,
                    state=normalize_state(parts[2]),
                    slurm_state=parts[2],
                    name=parts[1] or None,
                    submit_time=_time(parts[3]),
                    start_time=_time(parts[4]),
                    end_time=_time(parts[5]),
                    exit_code=parts[6] or None,
                    source="sacct",
                )
        return None

    def _from_jobcomp(self, job_id: int) -> JobInfo | None:
        try:
            lines = self._jobcomp_log.read_text(errors="replace").splitlines()
        except OSError:
            return None
        marker = f"JobId={int(job_id)} "
        for line in reversed(lines):
            if line.startswith(marker):
                info = _parse_scontrol(job_id, line)
                return JobInfo(**{**info.__dict__, "source": "jobcomp"})
        return None


def _field(text: str, key: str) -> str | None:
    match = re.search(rf"(?:^|\s){re.escape(key)}=(\S*)", text)
    if match is None:
        return None
    value = match.group(1)
    return None if value in ("", "(null)", "None", "Unknown", "N/A") else value


def _time(value: str | None) -> datetime | None:
    if not value or value in ("None", "Unknown", "N/A"):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _parse_scontrol(job_id: int, text: str) -> JobInfo:
    """Parse one ``scontrol show job -o`` line (or a jobcomp/filetxt line)."""
    slurm_state = _field(text, "JobState") or "PENDING"
    return JobInfo(
        job_id=job_id,
        state=normalize_state(slurm_state),
        slurm_state=slurm_state,
        name=_field(text, "JobName") or _field(text, "Name"),
        submit_time=_time(_field(text, "SubmitTime")),
        start_time=_time(_field(text, "StartTime")),
        end_time=_time(_field(text, "EndTime")),
        exit_code=_field(text, "ExitCode"),
        reason=_field(text, "Reason"),
    )


def _first_error(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in lines:
        if "error" in line.lower():
            return line
    return lines[0] if lines else ""


def _unreachable(message: str) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in _UNREACHABLE)
