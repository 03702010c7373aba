"""Child processes: start them, watch them, stop them, and never leave one behind.

One helper for every place that runs another program: the Dagster jobs (which run
``streamplane supervisor|worker``), the development tools (the embedded broker,
``streamplane dev``, ``make run``, the bench) and the tests' process fleet. It works on
plain :class:`subprocess.Popen` objects, so a caller keeps full control of its child.

Stopping is always the same escalation: a polite signal (SIGTERM: the runtime drains),
a bounded wait, then SIGKILL. A session leader (a child started with
``own_session=True``) can be stopped with everything it started, by process group.

A process manager such as honcho was considered: it runs a Procfile's commands with
prefixed output and stops them together, but it owns signal handling and output, and
knows no readiness, drain timeouts or process groups, which is what these callers need.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

__all__ = [
    "clean_env",
    "first_exit",
    "free_port",
    "group_alive",
    "kill",
    "port_open",
    "spawn",
    "stop",
    "stop_all",
    "stop_session",
    "streamplane_argv",
    "tail_file",
    "wait_for",
    "wait_group",
]

_PR_SET_PDEATHSIG = 1


def streamplane_argv(*args: str) -> list[str]:
    """The command line of ``streamplane ARGS`` with this interpreter (no PATH lookup)."""
    return [sys.executable, "-m", "streamplane.cli", *args]


def clean_env(
    extra: Mapping[str, object] | None = None,
    base: Mapping[str, str] | None = None,
    drop: Collection[str] = (),
) -> dict[str, str]:
    """``base`` (the environment) without streamplane's settings variables, plus ``extra``.

    A child started with it runs with the settings' defaults and what ``extra`` says,
    whatever the caller's shell exports (a stray KAFKA_BROKERS cannot leak in).
    """
    from streamplane.config import variables  # the config root imports pydantic: lazily

    dropped = set(variables()) | {name.upper() for name in drop}
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if k.upper() not in dropped}
    env.update({k: str(v) for k, v in (extra or {}).items()})
    return env


def _preexec(ignore_sigint: bool, die_with_parent: bool) -> None:  # pragma: no cover - child
    if ignore_sigint:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if die_with_parent and sys.platform.startswith("linux"):
        # Linux sends the child SIGTERM when its parent dies, so it drains rather than
        # lingers. Only a prctl call runs between fork and exec: no locks taken.
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    output: Path | None = None,
    errors: Path | None = None,
    cwd: Path | None = None,
    own_session: bool = False,
    ignore_sigint: bool = False,
    die_with_parent: bool = False,
    append: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stdin closed.

    Args:
        argv: The command line.
        env: The child's whole environment (default: ours).
        output: File for stdout (and stderr, unless ``errors`` is given); default: ours.
        errors: File for stderr alone.
        cwd: Working directory (default: ours).
        own_session: A new session and process group, so a terminal's Ctrl-C reaches
            only us and :func:`stop_session` can stop all the child starts.
        ignore_sigint: The child ignores SIGINT (it is stopped with SIGTERM, in order).
        die_with_parent: Linux: the child gets SIGTERM when this process dies.
        append: Append to ``output`` and ``errors`` instead of truncating them.
    """
    mode = "ab" if append else "wb"
    with contextlib.ExitStack() as files:
        stdout: IO[bytes] | None = files.enter_context(output.open(mode)) if output else None
        stderr: IO[bytes] | int | None = (
            files.enter_context(errors.open(mode))
            if errors
            else (subprocess.STDOUT if stdout is not None else None)
        )
        hook = ignore_sigint or die_with_parent
        return subprocess.Popen(
            list(argv),
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            cwd=cwd,
            start_new_session=own_session,
            preexec_fn=(lambda: _preexec(ignore_sigint, die_with_parent)) if hook else None,
        )


def wait_for(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """Wait up to ``timeout`` seconds; the exit status, or None if it still runs."""
    try:
        return proc.wait(timeout=max(timeout, 0.0))
    except subprocess.TimeoutExpired:
        return None


def kill(proc: subprocess.Popen[bytes]) -> int:
    """SIGKILL ``proc`` if it runs, and reap it; returns its exit status."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    return proc.wait()


def stop(
    proc: subprocess.Popen[bytes],
    timeout: float,
    *,
    sig: int = signal.SIGTERM,
    absorb: tuple[type[BaseException], ...] = (),
) -> int:
    """Send ``sig`` (SIGTERM: drain), wait up to ``timeout`` s, then SIGKILL; the status.

    Exceptions of the types in ``absorb`` raised while waiting (a second interrupt that
    must not cut a drain short, say) are swallowed and the wait goes on.
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
    deadline = time.monotonic() + timeout
    while True:
        try:
            code = wait_for(proc, deadline - time.monotonic())
        except absorb:
            continue
        return code if code is not None else kill(proc)


def stop_all(
    procs: Iterable[subprocess.Popen[bytes]], timeout: float, sig: int = signal.SIGTERM
) -> list[int]:
    """Signal every running process at once, wait for all within one ``timeout``, kill the rest.

    Returns the exit statuses in order. An interrupt while waiting (a second Ctrl-C)
    kills every process that is left before it propagates.
    """
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
    deadline = time.monotonic() + timeout
    try:
        codes = [wait_for(proc, deadline - time.monotonic()) for proc in procs]
    except BaseException:
        for proc in procs:
            kill(proc)
        raise
    return [
        code if code is not None else kill(proc) for code, proc in zip(codes, procs, strict=True)
    ]


def first_exit(procs: Mapping[str, subprocess.Popen[bytes]]) -> tuple[str, int] | None:
    """The name and status of the first process of ``procs`` that has exited, if any."""
    for name, proc in procs.items():
        code = proc.poll()
        if code is not None:
            return name, code
    return None


def group_alive(pgid: int) -> bool:
    """Whether any process of process group ``pgid`` is left."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a zombie leader's group still answers; treat as alive
        return True
    return True


def wait_group(pgid: int, timeout: float) -> bool:
    """Wait until no process of group ``pgid`` is left; returns whether none is."""
    deadline = time.monotonic() + timeout
    while group_alive(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def stop_session(
    proc: subprocess.Popen[bytes],
    leader_timeout: float,
    group_timeout: float,
    leader_signal: int = signal.SIGINT,
) -> None:
    """Stop a child started with ``own_session=True`` and everything it started.

    ``leader_signal`` asks the leader for its graceful shutdown (SIGINT for Dagster's
    services); then whatever is left of its process group gets SIGTERM (they drain), and
    what outlives ``group_timeout`` is killed.
    """
    pgid = proc.pid  # a session leader's pid is its group id
    stop(proc, leader_timeout, sig=leader_signal)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    if not wait_group(pgid, group_timeout):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def free_port(host: str = "127.0.0.1", avoid: Collection[int] = ()) -> int:
    """A TCP port the OS says is free on ``host`` now (another process may race us).

    Prefer listening on port 0 and reading the port back (the supervisor's ready file)
    wherever a process may pick its own; use this only where a port must be fixed.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in avoid:
            return port


def port_open(host: str, port: int, timeout: float) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=max(timeout, 0.05)):
            return True
    except OSError:
        return False


def tail_file(path: Path, lines: int = 30, max_bytes: int = 256 * 1024, frames: bool = True) -> str:
    """The last ``lines`` non-empty lines of a possibly large log file.

    ``frames=False`` leaves out indented lines (Java's ``at ...`` stack frames), which
    would push the lines that say what went wrong out of a short tail.
    """
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(handle.tell() - max_bytes, 0))
            data = handle.read()
    except OSError as exc:
        return f"(could not read {path}: {exc})"
    text = data.decode("utf-8", errors="replace")
    kept = [
        line for line in text.splitlines() if line.strip() and (frames or not line[:1].isspace())
    ]
    return "\n".join(kept[-lines:])
