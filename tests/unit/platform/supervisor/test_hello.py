"""The Hello check at the protocol edge: ids bounded and plain, credit in range."""

from __future__ import annotations

import pytest

from streamplane.platform.supervisor.service import MAX_ID_CHARS, check_hello
from streamplane.runner.v1 import runner_pb2


def _hello(**fields: object) -> runner_pb2.WorkerMessage:
    message = runner_pb2.WorkerMessage()
    values: dict[str, object] = {
        "worker_id": "host-1.example.com-4242",
        "node_id": "host-1",
        "max_inflight": 4,
        "engine": "polars",
        "version": "0.1.0+g1a2b",
    }
    values.update(fields)
    for name, value in values.items():
        setattr(message.hello, name, value)
    return message


def test_a_real_workers_hello_passes() -> None:
    assert check_hello(_hello()) is None
    assert check_hello(_hello(worker_id="dagster-1a2b3c4d", node_id="")) is None
    assert check_hello(_hello(worker_id="w" * MAX_ID_CHARS)) is None


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"worker_id": ""}, "worker_id"),
        ({"worker_id": "w1\n2026-01-01 INFO forged line"}, "worker_id"),
        ({"worker_id": "w1\rx"}, "worker_id"),
        ({"worker_id": "w 1"}, "worker_id"),
        ({"worker_id": "w1\x1b[31m"}, "worker_id"),
        ({"worker_id": "w=1"}, "worker_id"),
        ({"worker_id": "w" * (MAX_ID_CHARS + 1)}, "worker_id"),
        ({"worker_id": "x" * 10_000_000}, "worker_id"),
        ({"node_id": "n\nforged"}, "node_id"),
        ({"node_id": "n" * (MAX_ID_CHARS + 1)}, "node_id"),
        ({"engine": "polars\n"}, "engine"),
        ({"version": "v" * 1000}, "version"),
        ({"max_inflight": 0}, "max_inflight"),
        ({"max_inflight": 1025}, "max_inflight"),
        ({"max_inflight": 10**9}, "max_inflight"),
        ({"max_inflight": 2**32 - 1}, "max_inflight"),  # a negative int32 on the wire
    ],
)
def test_hostile_hellos_are_refused(fields: dict[str, object], reason: str) -> None:
    error = check_hello(_hello(**fields))
    assert error is not None
    assert reason in error
    # The refusal is logged: it must not echo the hostile text back.
    assert "\n" not in error
    assert "\r" not in error
    assert len(error) < 200


def test_the_first_message_must_be_hello() -> None:
    message = runner_pb2.WorkerMessage()
    message.credit.available = 1
    assert check_hello(message) == "the first message must be Hello"
