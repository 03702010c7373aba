"""The Slurm client against a fake controller: argv, states, errors, polling on a fake clock."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from streamplane.rl.exceptions import (
    JobNotFound,
    SlurmSubmitError,
    SlurmUnavailable,
)
from streamplane.rl.slurm.client import CommandResult, SlurmClient
from streamplane.rl.slurm.jobs import JobSpec, JobState, normalize_state, sbatch_argv
from tests.rl_support.fakes import FakeClock, FakeSlurm


def spec(**changes: object) -> JobSpec:
    values: dict[str, object] = {
        "name": "sp-train-abc",
        "script": Path("/t/job.sh"),
        "args": ["--skill", "a b", "$(id)"],
        "workdir": Path("/t"),
        "log": Path("/t/train.log"),
        "cpus": 2,
        "memory_mb": 512,
        "time_limit_min": 5,
        "export": {"PATH": None, "JAX_PLATFORMS": "cpu"},
    }
    values.update(changes)
    return JobSpec(**values)  # type: ignore[arg-type]


def test_sbatch_argv_is_exact() -> None:
    assert sbatch_argv(spec(gpus=1, partition="debug")) == [
        "sbatch", "--parsable", "--job-name=sp-train-abc", "--chdir=/t",
        "--output=/t/train.log", "--nodes=1", "--ntasks=1", "--cpus-per-task=2",
        "--mem=512M", "--time=5", "--export=PATH,JAX_PLATFORMS=cpu", "--gres=gpu:1",
        "--partition=debug", "/t/job.sh", "--skill", "a b", "$(id)",
    ]  # fmt: skip


def test_export_defaults_to_none_never_all() -> None:
    assert "--export=NONE" in sbatch_argv(spec(export={}))


@pytest.mark.parametrize(
    "changes",
    [
        {"name": "x;id"},
        {"partition": "debug --wrap=id"},
        {"export": {"PATH;": None}},
        {"export": {"X": "a,b"}},
    ],
)
def test_unsafe_words_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(SlurmSubmitError):
        sbatch_argv(spec(**changes))


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("PENDING", JobState.PENDING),
        ("CONFIGURING", JobState.PENDING),
        ("RUNNING", JobState.RUNNING),
        ("COMPLETING", JobState.RUNNING),
        ("COMPLETED", JobState.COMPLETED),
        ("CANCELLED by 0", JobState.CANCELLED),
        ("CANCELLED+", JobState.CANCELLED),
        ("TIMEOUT", JobState.FAILED),
        ("OUT_OF_MEMORY", JobState.FAILED),
        ("NODE_FAIL", JobState.FAILED),
    ],
)
def test_states_are_normalized(word: str, state: JobState) -> None:
    assert normalize_state(word) == state


def test_submit_then_follow_to_completion_on_a_fake_clock() -> None:
    fake, clock = FakeSlurm(script=["PENDING", "RUNNING", "RUNNING", "COMPLETED"]), FakeClock()
    client = SlurmClient(fake, clock=clock, sleep=clock.sleep)
    job_id = client.submit(spec())
    assert job_id == 100
    seen: list[JobState] = []
    info = client.wait(job_id, timeout=60, poll_s=2, on_poll=lambda i: seen.append(i.state))
    assert info.state == JobState.COMPLETED
    assert seen == [JobState.PENDING, JobState.RUNNING, JobState.RUNNING, JobState.COMPLETED]
    assert clock.sleeps == [2, 2, 2]
    assert info.exit_code == "0:0"
    assert info.name == "sp-train-abc"


def test_wait_times_out_on_the_fake_clock() -> None:
    fake, clock = FakeSlurm(), FakeClock()
    client = SlurmClient(fake, clock=clock, sleep=clock.sleep)
    job_id = client.submit(spec())
    with pytest.raises(TimeoutError, match="PENDING"):
        client.wait(job_id, timeout=10, poll_s=3)
    assert clock.now >= 1010


def test_submit_is_idempotent_by_name() -> None:
    fake = FakeSlurm()
    client = SlurmClient(fake)
    first = client.submit(spec())
    assert client.submit(spec()) == first
    assert len(fake.sbatch_calls()) == 1


def test_controller_down_is_unavailable_and_nothing_is_submitted() -> None:
    fake = FakeSlurm(down=True)
    with pytest.raises(SlurmUnavailable, match="contact slurm controller"):
        SlurmClient(fake).submit(spec())
    assert fake.sbatch_calls() == []


def test_refused_job_is_a_submit_error() -> None:
    fake = FakeSlurm(refuse="Requested node configuration is not available")
    with pytest.raises(SlurmSubmitError, match="node configuration"):
        SlurmClient(fake).submit(spec())


def test_missing_commands_name_what_to_install() -> None:
    def missing(argv: Sequence[str], timeout: float) -> CommandResult:
        raise FileNotFoundError(argv[0])

    with pytest.raises(SlurmUnavailable, match=r"slurm-setup\.sh"):
        SlurmClient(missing).ping()


def test_sbatch_timeout_finds_the_job_by_name() -> None:
    fake = FakeSlurm()

    def slow_sbatch(argv: Sequence[str], timeout: float) -> CommandResult:
        if argv[0] == "sbatch":
            fake(argv, timeout)  # the job got in, but the answer never came
            raise subprocess.TimeoutExpired(argv, timeout)
        return fake(argv, timeout)

    assert SlurmClient(slow_sbatch).submit(spec()) == 100


def test_forgotten_job_comes_from_the_jobcomp_log(tmp_path: Path) -> None:
    log = tmp_path / "jobcomp.log"
    log.write_text(
        "JobId=7 UserId=root(0) GroupId=root(0) Name=sp-train-x JobState=CANCELLED "
        "Partition=debug TimeLimit=5 StartTime=2026-01-01T00:00:01 "
        "EndTime=2026-01-01T00:00:09 NodeList=vm ExitCode=0:15\n"
    )
    info = SlurmClient(FakeSlurm(), jobcomp_log=log).job(7)
    assert (info.state, info.source, info.name) == (JobState.CANCELLED, "jobcomp", "sp-train-x")
    assert info.end_time is not None
    with pytest.raises(JobNotFound):
        SlurmClient(FakeSlurm(), jobcomp_log=log).job(8)
