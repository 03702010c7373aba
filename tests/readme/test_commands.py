"""The README's ``streamplane broker`` and ``streamplane dev``, as written, in a fresh clone.

Both run with their defaults: relative data folders (``.data/broker``, ``.data/dev``)
under the clone, which is the working directory, and the default ports. Each runs until
it is ready, then gets Ctrl-C, and nothing it started may be left running.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from streamplane.platform.kafka.admin import end_offsets
from tests.readme.clone import ctrl_c, fresh_clone, leftovers, require_defaults_free, start
from tests.support.deadline import wait_until

pytestmark = pytest.mark.kafka


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:]


@pytest.mark.timeout(600)
def test_streamplane_broker_with_its_defaults(tmp_path: Path) -> None:
    require_defaults_free(9092)
    clone = fresh_clone(tmp_path)
    log = tmp_path / "broker.log"
    proc = start(["streamplane", "broker"], clone, log)
    try:
        wait_until(
            lambda: "bootstrap: 127.0.0.1:9092" in log.read_text() or proc.poll() is not None,
            300,
            interval=0.5,
            message=lambda: f"streamplane broker never printed its bootstrap\n{_tail(log)}",
        )
        assert proc.poll() is None, _tail(log)
        data = clone / ".data" / "broker"
        assert (data / "kraft-combined-logs" / "meta.properties").exists()
        assert (
            f"log.dirs={data / 'kraft-combined-logs'}" in (data / "server.properties").read_text()
        )
    finally:
        status = ctrl_c(proc, 90)
    assert status == 0, _tail(log)
    wait_until(
        lambda: not leftovers(clone), 30, message=lambda: f"left running: {leftovers(clone)}"
    )


def _workers_with_acks() -> int:
    try:
        with urllib.request.urlopen("http://127.0.0.1:8080/v1/workers", timeout=2) as response:
            workers = json.loads(response.read())["workers"]
    except OSError:
        return 0
    return sum(1 for w in workers if w["acks"] > 0)


def _output_records() -> int:
    try:
        return sum(
            end_offsets({"bootstrap.servers": "127.0.0.1:9092"}, "features.events.demo", 5).values()
        )
    except Exception:
        return 0


@pytest.mark.timeout(600)
def test_streamplane_dev_with_its_defaults(tmp_path: Path) -> None:
    require_defaults_free(9092, 7000, 8080)
    clone = fresh_clone(tmp_path)
    log = tmp_path / "dev.log"
    proc = start(["streamplane", "dev"], clone, log)
    ready = clone / ".data" / "dev" / "logs" / "supervisor.ready"
    try:
        wait_until(
            lambda: ready.exists() or proc.poll() is not None,
            300,
            interval=0.5,
            message=lambda: f"the supervisor of streamplane dev never got ready\n{_tail(log)}",
        )
        assert proc.poll() is None, _tail(log)
        assert json.loads(ready.read_text())["http_port"] == 8080
        assert "streamplane dev is running" in log.read_text()
        # Records flow: both workers acknowledge tasks and features reach the output topic.
        wait_until(
            lambda: _workers_with_acks() >= 2 and _output_records() > 0,
            180,
            interval=1,
            message=lambda: f"no records flowed through streamplane dev\n{_tail(log)}",
        )
    finally:
        status = ctrl_c(proc, 120)
    assert status == 0, _tail(log)
    assert "streamplane dev stopped" in log.read_text()
    wait_until(
        lambda: not leftovers(clone), 30, message=lambda: f"left running: {leftovers(clone)}"
    )
