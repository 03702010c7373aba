"""The child-process helper: stop escalation, groups, ports, tails, clean environments."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from streamplane import processes
from tests.support.deadline import wait_until

_STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)"
)


def _python(code: str, log: Path, **kwargs: bool) -> subprocess.Popen[bytes]:
    return processes.spawn([sys.executable, "-c", code], output=log, **kwargs)


def _printed(log: Path, text: str) -> None:
    wait_until(lambda: text in log.read_text(), 30, message=f"never printed {text!r}")


def test_stop_returns_the_status_of_a_process_that_obeys(tmp_path: Path) -> None:
    proc = _python("import time; time.sleep(60)", tmp_path / "out.log")
    assert processes.stop(proc, 10) == -signal.SIGTERM


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    proc = _python(_STUBBORN, log)
    _printed(log, "ready")
    assert processes.stop(proc, 0.5) == -signal.SIGKILL


def test_stop_all_shares_one_deadline_and_kills_the_rest(tmp_path: Path) -> None:
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    polite = _python("import time; time.sleep(60)", logs[0])
    stubborn = _python(_STUBBORN, logs[1])
    _printed(logs[1], "ready")
    assert processes.stop_all([polite, stubborn], 0.5) == [-signal.SIGTERM, -signal.SIGKILL]


def test_stop_absorbs_the_named_interrupts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proc = _python("import time; time.sleep(60)", tmp_path / "out.log")
    real_wait = proc.wait
    calls: list[float | None] = []

    def interrupted_once(timeout: float | None = None) -> int:
        calls.append(timeout)
        if len(calls) == 1:
            raise InterruptedError("second Ctrl-C")
        return real_wait(timeout)

    monkeypatch.setattr(proc, "wait", interrupted_once)
    assert processes.stop(proc, 10, absorb=(InterruptedError,)) == -signal.SIGTERM
    assert len(calls) == 2


def test_output_and_errors_go_to_their_files(tmp_path: Path) -> None:
    out, err = tmp_path / "out.log", tmp_path / "err.log"
    code = "import sys; print('to out'); print('to err', file=sys.stderr)"
    proc = processes.spawn([sys.executable, "-c", code], output=out, errors=err)
    assert proc.wait(30) == 0
    assert out.read_text() == "to out\n"
    assert err.read_text() == "to err\n"


def test_ignore_sigint_leaves_sigterm_in_charge(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    proc = _python("import time; print('up', flush=True); time.sleep(60)", log, ignore_sigint=True)
    _printed(log, "up")
    proc.send_signal(signal.SIGINT)
    assert processes.wait_for(proc, 0.5) is None  # still running
    assert processes.stop(proc, 10) == -signal.SIGTERM


def test_stop_session_stops_the_leader_and_what_it_started(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    code = (
        "import subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print(child.pid, flush=True); time.sleep(60)"
    )
    leader = _python(code, log, own_session=True)
    wait_until(lambda: log.read_text().strip(), 30, message="the leader printed no child pid")
    grandchild = int(log.read_text().split()[0])
    processes.stop_session(leader, leader_timeout=5, group_timeout=10)
    assert leader.poll() is not None
    assert not processes.group_alive(leader.pid)
    with pytest.raises(ProcessLookupError):
        os.kill(grandchild, 0)


def test_first_exit_names_the_process_that_ended(tmp_path: Path) -> None:
    running = _python("import time; time.sleep(60)", tmp_path / "a.log")
    ended = _python("raise SystemExit(3)", tmp_path / "b.log")
    ended.wait(30)
    try:
        assert processes.first_exit({"running": running, "ended": ended}) == ("ended", 3)
        assert processes.first_exit({"running": running}) is None
    finally:
        processes.kill(running)


def test_free_port_is_bindable_and_avoids_what_it_is_told() -> None:
    first = processes.free_port()
    second = processes.free_port(avoid={first})
    assert second != first
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", second))
        sock.listen()
        assert processes.port_open("127.0.0.1", second, 1.0)


def test_tail_file_can_leave_stack_frames_out(tmp_path: Path) -> None:
    log = tmp_path / "broker.log"
    log.write_text("first\nERROR Address already in use\n\tat Foo.bar\n  ... 3 more\nlast\n")
    assert processes.tail_file(log, lines=2) == "  ... 3 more\nlast"
    assert processes.tail_file(log, lines=2, frames=False) == "ERROR Address already in use\nlast"
    assert "could not read" in processes.tail_file(tmp_path / "missing.log")


def test_clean_env_drops_settings_and_keeps_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BROKERS", "stray:9092")
    monkeypatch.setenv("SLOW_TASK_SECONDS", "1")
    monkeypatch.setenv("HOME_OF_SOMETHING_ELSE", "kept")
    env = processes.clean_env({"INPUT_TOPIC": "mine", "COUNT": 3}, drop=("slow_task_seconds",))
    assert "KAFKA_BROKERS" not in env
    assert "SLOW_TASK_SECONDS" not in env
    assert env["HOME_OF_SOMETHING_ELSE"] == "kept"
    assert env["INPUT_TOPIC"] == "mine"
    assert env["COUNT"] == "3"


def test_streamplane_argv_runs_this_interpreter() -> None:
    assert processes.streamplane_argv("worker") == [
        sys.executable,
        "-m",
        "streamplane.cli",
        "worker",
    ]
