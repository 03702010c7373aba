"""A fresh clone of this repository in a temporary folder, run as a new user would.

The README's commands run in it exactly as written, with their defaults (relative data
folders under ``.data/``, the default ports). The clone does not reinstall anything: its
``.venv`` is a symlink to this checkout's virtual environment, whose ``streamplane`` is
the editable install of this checkout; the clone's working directory is what the
commands see. ``make`` is told (``-o .venv/.installed``) that the environment is built,
since the clone's fresh files are newer than its stamp.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import psutil

from streamplane.processes import port_open
from tests.dagster.services import require
from tests.support.procs import REPO_ROOT

VENV = REPO_ROOT / ".venv"


def kafka_tools_present() -> bool:
    """Java 17+ and Maven, which the embedded broker needs."""
    from streamplane.dev.broker import find_java, find_maven
    from streamplane.platform.kafka.exceptions import BrokerToolMissing

    try:
        find_java()
        find_maven()
    except BrokerToolMissing:
        return False
    return True


def require_defaults_free(*ports: int) -> None:
    """The README's commands use fixed default ports: skip (or fail in CI) when taken."""
    require(
        kafka_tools_present(), "java 17+ and maven (apt-get install openjdk-17-jre-headless maven)"
    )
    busy = [port for port in ports if port_open("127.0.0.1", port, 0.2)]
    require(not busy, f"the default ports {busy} (something else listens there)")


def fresh_clone(tmp_path: Path) -> Path:
    """``git clone`` this repository into ``tmp_path/clone`` with the venv linked in."""
    require(shutil.which("git") is not None, "git (apt-get install git)")
    require((VENV / "bin" / "streamplane").exists(), f"the virtual environment {VENV}")
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "--quiet", str(REPO_ROOT), str(clone)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (clone / ".venv").symlink_to(VENV, target_is_directory=True)
    return clone


def user_env(clone: Path) -> dict[str, str]:
    """A user's shell: the clone's venv first on PATH, no streamplane or test settings."""
    from streamplane.processes import clean_env

    env = clean_env(drop=("PYTHONPATH", "DAGSTER_HOME", "VIRTUAL_ENV", "STREAMPLANE_CACHE_DIR"))
    env["PATH"] = f"{clone / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(clone / ".venv")
    env["PYTHONUNBUFFERED"] = "1"
    # The jar cache is the user's own (~/.cache/streamplane), as the README says; a
    # cache the test runner was pointed at is kept, so nothing is fetched twice.
    if os.environ.get("STREAMPLANE_CACHE_DIR"):
        env["STREAMPLANE_CACHE_DIR"] = os.environ["STREAMPLANE_CACHE_DIR"]
    return env


def start(argv: list[str], clone: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start a README command in the clone, in a session of its own (like a terminal)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            argv,
            cwd=clone,
            env=user_env(clone),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def ctrl_c(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGINT to the command's process group, as a terminal's Ctrl-C; its exit status."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError(f"the command did not stop within {timeout:g} s of Ctrl-C") from None


def leftovers(clone: Path) -> list[str]:
    """Processes that still run in, or name, the clone (its JVM, its children)."""
    found = []
    marker = str(clone)
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            cwd = proc.info["cwd"] or ""
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if marker in cmdline or cwd.startswith(marker):
            found.append(f"{proc.pid}: {cmdline[:160]}")
    return found
