"""The supervisor's dead-letter writer when the dead letter itself is too large.

A record over the broker's size limit used to loop: its DLQ copy failed with
MSG_SIZE_TOO_LARGE, the task was requeued, rejected again, and so on. Now the writer
falls back to a truncated dead letter (coordinates, sizes, reason; no payload).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from streamplane.platform import headers as h
from streamplane.platform import metrics as m
from streamplane.platform.kafka.errors import MSG_SIZE_TOO_LARGE
from streamplane.platform.kafka.exceptions import ProduceFailed
from streamplane.platform.supervisor.dead_letters import TOO_LARGE_KIND, DeadLetterWriter
from streamplane.platform.supervisor.offsets import OffsetTracker
from streamplane.platform.supervisor.tasks import Task

from .factories import make_task

LIMIT = 1_000_000


class _Error:
    def __init__(self, code: int) -> None:
        self._code = code

    def code(self) -> int:
        return self._code

    def __str__(self) -> str:
        return f"KafkaError code {self._code}"


@dataclass
class FakeProducer:
    """Refuses records over LIMIT at produce (``refuse``) or in their report (``report``)."""

    mode: str = "refuse"
    fail_all: bool = False
    written: list[tuple[bytes | None, bytes | None, list[Any]]] = field(default_factory=list)
    reports: list[tuple[Callable[[Any, Any], None], Any]] = field(default_factory=list)

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Any = None,
        on_delivery: Callable[[Any, Any], None] | None = None,
    ) -> None:
        size = len(value or b"") + len(key or b"") + sum(len(k) + len(v) for k, v in headers)
        assert on_delivery is not None
        if self.fail_all:
            self.reports.append((on_delivery, _Error(-195)))  # transport failure
            return
        if size > LIMIT:
            if self.mode == "refuse":
                raise ProduceFailed("Message size too large", code=MSG_SIZE_TOO_LARGE)
            self.reports.append((on_delivery, _Error(MSG_SIZE_TOO_LARGE)))
            return
        self.written.append((value, key, list(headers)))
        self.reports.append((on_delivery, None))

    def poll(self, timeout: float = 0) -> int:
        served, self.reports = self.reports, []
        for callback, error in served:
            callback(error, None)
        return len(served)


def _task(value_size: int) -> Task:
    task = make_task(("in", 3), [41], OffsetTracker(41), tenant="t1", value_size=value_size)
    task.records.keys[0] = b"user-7"
    task.records.headers[0] = [("trace", b"abc")]
    task.attempt = 5
    return task


def _write(producer: FakeProducer, task: Task) -> list[bool]:
    settled: list[bool] = []
    writer = DeadLetterWriter(producer, "in.dlq")  # type: ignore[arg-type]
    writer.write(
        task, "reject", "ProduceFailed('Message size too large')", lambda _, ok: settled.append(ok)
    )
    for _ in range(3):
        writer.poll()
    return settled


def _truncated() -> float:
    return m.DEAD_LETTERS_TRUNCATED.labels("reject")._value.get()


@pytest.mark.parametrize("mode", ["refuse", "report"])
def test_a_dead_letter_too_large_is_written_truncated_and_settles(mode: str) -> None:
    before = _truncated()
    producer = FakeProducer(mode)
    settled = _write(producer, _task(LIMIT))
    assert settled == [True], "the record must be settled as written, once"
    [(value, key, headers)] = producer.written
    hs = dict(headers)
    assert hs[h.ERROR_KIND] == TOO_LARGE_KIND.encode()
    assert hs[h.SRC_TOPIC] == b"in"
    assert hs[h.SRC_PARTITION] == b"3"
    assert hs[h.SRC_OFFSET] == b"41"
    assert hs[h.TENANT] == b"t1"
    assert b"reject" in hs[h.ERROR]
    assert "trace" not in hs, "the input's headers may be what is too large"
    assert key == b"user-7"
    body = orjson.loads(value or b"")
    assert body["offset"] == 41
    assert body["partition"] == 3
    assert body["value_bytes"] == LIMIT
    assert body["kind"] == "reject"
    assert len(value or b"") < 4096
    assert _truncated() == before + 1


def test_a_small_dead_letter_is_written_whole() -> None:
    before = _truncated()
    producer = FakeProducer()
    assert _write(producer, _task(100)) == [True]
    [(value, _, headers)] = producer.written
    assert value == b"x" * 100
    assert dict(headers)[h.ERROR_KIND] == b"reject"
    assert _truncated() == before


def test_other_failures_still_fail_the_write() -> None:
    producer = FakeProducer(fail_all=True)
    assert _write(producer, _task(LIMIT)) == [False]
    assert producer.written == []
