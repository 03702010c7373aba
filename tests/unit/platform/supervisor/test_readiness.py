"""The supervisor's readiness file: written atomically, read typed, waited for by pid."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from streamplane.platform.supervisor.readiness import (
    SupervisorNotReady,
    SupervisorReady,
    announce,
    read_ready,
    wait_ready,
)


def test_announce_prints_the_line_and_writes_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nested" / "ready.json"
    ready = announce(path, 7001, 8081)
    assert capsys.readouterr().out == "supervisor ready grpc=7001 http=8081\n"
    assert ready == SupervisorReady(7001, 8081, os.getpid())
    assert json.loads(path.read_text()) == {
        "grpc_port": 7001,
        "http_port": 8081,
        "pid": os.getpid(),
    }
    assert read_ready(path) == ready
    assert ready.grpc_addr == "127.0.0.1:7001"
    assert ready.http_url == "http://127.0.0.1:8081"
    assert [p.name for p in path.parent.iterdir()] == ["ready.json"]  # no staging file left


def test_without_a_path_only_the_line_is_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    announce(None, 1, 2)
    assert capsys.readouterr().out == "supervisor ready grpc=1 http=2\n"


def test_a_missing_file_reads_as_not_ready(tmp_path: Path) -> None:
    assert read_ready(tmp_path / "ready.json") is None


def test_a_foreign_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "ready.json"
    path.write_text('{"grpc": 1}')
    with pytest.raises(SupervisorNotReady, match="not a readiness file"):
        read_ready(path)


def test_wait_ready_ignores_a_file_of_another_pid(tmp_path: Path) -> None:
    path = tmp_path / "ready.json"
    announce(path, 1, 2)
    with pytest.raises(SupervisorNotReady, match="wrote no"):
        wait_ready(path, 0.2, pid=os.getpid() + 1)
    assert wait_ready(path, 0.2, pid=os.getpid()).http_port == 2


def test_wait_ready_stops_when_the_process_is_gone(tmp_path: Path) -> None:
    with pytest.raises(SupervisorNotReady, match="exited before"):
        wait_ready(tmp_path / "ready.json", 30, alive=lambda: False)
