"""A fake Slurm behind the client's command seam, and a fake clock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from streamplane.rl.slurm.client import CommandResult

DOWN = "slurm_load_jobs error: Unable to contact slurm controller (connect failure)"


@dataclass
class FakeJob:
    """One job the fake controller knows."""

    job_id: int
    name: str
    argv: list[str]
    state: str = "PENDING"
    start: str = "Unknown"
    end: str = "Unknown"
    exit_code: str = "0:0"


@dataclass
class FakeSlurm:
    """Answers scontrol/squeue/sbatch/scancel/sacct like a one-node cluster would."""

    down: bool = False
    refuse: str | None = None
    next_id: int = 100
    jobs: dict[int, FakeJob] = field(default_factory=dict)
    calls: list[list[str]] = field(default_factory=list)
    #: Extra state answers, consumed in order by `scontrol show job`.
    script: list[str] = field(default_factory=list)

    def __call__(self, argv: Sequence[str], timeout: float) -> CommandResult:
        argv = list(argv)
        self.calls.append(argv)
        if self.down:
            return CommandResult(1, "", f"{argv[0]}: error: {DOWN}\n")
        command = argv[0]
        if argv[:2] == ["scontrol", "ping"]:
            return CommandResult(0, "Slurmctld(primary) at node is UP\n", "")
        if command == "sbatch":
            if self.refuse:
                return CommandResult(
                    1, "", f"sbatch: error: Batch job submission failed: {self.refuse}\n"
                )
            job_id = self.next_id
            self.next_id += 1
            name = next(a.split("=", 1)[1] for a in argv if a.startswith("--job-name="))
            self.jobs[job_id] = FakeJob(job_id, name, argv)
            return CommandResult(0, f"{job_id}\n", "")
        if command == "squeue":
            name = next(a.split("=", 1)[1] for a in argv if a.startswith("--name="))
            ids = [
                str(j.job_id)
                for j in self.jobs.values()
                if j.name == name and j.state in ("PENDING", "RUNNING")
            ]
            return CommandResult(0, "".join(f"{i}\n" for i in ids), "")
        if argv[:3] == ["scontrol", "show", "job"]:
            job = self.jobs.get(int(argv[-1]))
            if job is None:
                return CommandResult(1, "", "slurm_load_jobs error: Invalid job id specified\n")
            if self.script:
                job.state = self.script.pop(0)
            return CommandResult(
                0,
                f"JobId={job.job_id} JobName={job.name} UserId=root(0) JobState={job.state} "
                f"Reason=None ExitCode={job.exit_code} SubmitTime=2026-01-01T00:00:00 "
                f"StartTime={job.start} EndTime={job.end} Command=/x a b\n",
                "",
            )
        if command == "scancel":
            job = self.jobs.get(int(argv[-1]))
            if job is not None and job.state in ("PENDING", "RUNNING"):
                job.state = "CANCELLED"
            return CommandResult(0, "", "")
        if command == "sacct":
            return CommandResult(1, "", "Slurm accounting storage is disabled\n")
        raise AssertionError(f"unexpected command {argv}")

    def sbatch_calls(self) -> list[list[str]]:
        """Every sbatch argv, in order."""
        return [c for c in self.calls if c[0] == "sbatch"]


@dataclass
class FakeClock:
    """Monotonic time that moves only when slept."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
