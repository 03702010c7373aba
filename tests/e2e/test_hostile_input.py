"""Hostile input against real processes: a record too large for its own dead letter, and
Hellos that try to forge log lines or declare absurd credit.
"""

from __future__ import annotations

import random

import grpc
import orjson
import pytest
from confluent_kafka import Producer

from streamplane.dev.demo_events import make_event
from streamplane.platform import headers as h
from streamplane.platform.kafka import admin
from streamplane.platform.supervisor.dead_letters import TOO_LARGE_KIND
from streamplane.runner.v1 import runner_pb2
from tests.e2e.test_protocol import RawSession, _serialize, hello
from tests.support.audit import assert_committed_at_end, audit_topics
from tests.support.deadline import wait_until
from tests.support.procs import Processes, Stack

pytestmark = pytest.mark.kafka

# librdkafka's default message.max.bytes is 1,000,000: the input fits, but neither its
# copy with the sp-* headers (output or worker dead letter) nor the supervisor's dead
# letter, which adds sp-error too, does.
HUGE_BYTES = 999_900
BIG_OFFSET = 5
MAX_ATTEMPTS = 2


def test_a_record_too_large_for_its_dead_letter_is_truncated_and_passed(
    procs: Processes, stack: Stack
) -> None:
    admin.ensure_topics(stack.conf, {stack.topics.input: 1})
    rng = random.Random(3)
    producer = Producer({**stack.conf, "linger.ms": 5})
    for offset in range(BIG_OFFSET * 2 + 1):
        value = (
            b"x" * HUGE_BYTES
            if offset == BIG_OFFSET
            else make_event(rng, offset, 2, 10, bad=False).value
        )
        producer.produce(stack.topics.input, value, b"user-1", partition=0)
    assert producer.flush(30) == 0
    ends = stack.end_offsets()

    sup = procs.supervisor(
        stack.env(MAX_ATTEMPTS=MAX_ATTEMPTS, BATCH_MAX_RECORDS=4, RETRY_BACKOFF_MS=20)
    )
    procs.worker(stack.env(SUPERVISOR_GRPC_ADDR=sup.grpc_addr))
    stack.wait_committed_at_end(120, ends)
    metrics = sup.metrics()
    assert sup.terminate(timeout=60) == 0, sup.tail()
    assert_committed_at_end(stack.committed(), ends)
    assert 'supervisor_dead_letters_truncated_total{kind="reject"} 1.0' in metrics, metrics

    audit = audit_topics(stack.bootstrap, stack.topics.input, stack.topics.output, stack.topics.dlq)
    assert not audit.lost, audit.summary()
    (letter,) = audit.dead_letters_of((0, BIG_OFFSET))
    assert letter.headers[h.ERROR_KIND] == TOO_LARGE_KIND.encode(), letter.headers
    assert letter.headers[h.SRC_OFFSET] == str(BIG_OFFSET).encode()
    body = orjson.loads(letter.value or b"")
    assert body["offset"] == BIG_OFFSET
    assert body["value_bytes"] == HUGE_BYTES
    assert len(audit.outputs) == BIG_OFFSET * 2  # every other record went on


def _hello_bytes(worker_id: str, max_inflight_varint: bytes) -> bytes:
    """A WorkerMessage with a Hello whose max_inflight is the raw varint given."""
    inner = runner_pb2.Hello(worker_id=worker_id, node_id="test").SerializeToString()
    inner += b"\x18" + max_inflight_varint  # field 3, varint
    return b"\x0a" + bytes([len(inner)]) + inner  # WorkerMessage.hello = 1


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = b""
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def test_hostile_hellos_are_refused_and_logged_on_one_line(procs: Processes, stack: Stack) -> None:
    admin.ensure_topics(stack.conf, {stack.topics.input: 1})
    sup = procs.supervisor(stack.env(), ready=False)
    forged = "2026-01-01 00:00:00,000 INFO streamplane forged"
    zero = hello("zero")
    zero.hello.max_inflight = 0
    huge = hello("huge")
    huge.hello.max_inflight = 10**9
    attempts: list[runner_pb2.WorkerMessage | bytes] = [
        zero,
        huge,
        _hello_bytes("negative", _varint(-1)),
        hello(f"w1\n{forged}"),
        hello("x" * 1_000_000),
        hello("w1\r\n" + forged),
    ]
    for message in attempts:
        session = RawSession(sup.grpc_addr, _serialize)
        try:
            session.send(message)
            assert session.ended.wait(15), "a bad Hello kept its stream open"
            assert session.error is not None
            code = session.error.code()  # type: ignore[attr-defined]
            assert code == grpc.StatusCode.INVALID_ARGUMENT, session.error
            assert not session.tasks()
        finally:
            session.close()
    wait_until(
        lambda: sup.log().count("worker protocol violation") >= len(attempts),
        15,
        message=sup.tail,
    )
    assert not sup.workers()
    for line in sup.log().splitlines():
        assert not line.startswith(forged), "a Hello forged a log line"
        assert len(line) < 10_000, line[:200]
