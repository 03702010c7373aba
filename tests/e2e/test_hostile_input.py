"""Hostile input against real processes: a record too large for its own dead letter, a
mix of hostile records over six partitions, and Hellos that try to forge log lines or
declare absurd credit.
"""

from __future__ import annotations

import random

import grpc
import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

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


# The input topic takes records up to 3 MB; the output and dead-letter topics keep the
# broker's default of 1 MB, so copies of the biggest records fit in neither.
BIG_TOPIC_BYTES = 3_000_000
HOSTILE_PARTITIONS = 6
HOSTILE_TENANTS = 10_000


def _event(rng: random.Random, index: int, **fields: object) -> bytes:
    event = orjson.loads(make_event(rng, index, HOSTILE_TENANTS, 50, bad=False).value)
    return orjson.dumps({**event, **fields})


def _hostile_values(rng: random.Random) -> list[tuple[bytes | None, bytes | None, bool]]:
    """(key, value, valid) of each hostile record; valid ones must reach the output."""
    good = _event(rng, 0)
    nested = 100_000
    return [
        (b"big-1", _event(rng, 1, note="n" * 900_000), True),
        (b"big-2", _event(rng, 2, note="n" * 1_200_000), True),
        (b"garbage-1", b"\xff" * 999_000, False),
        (b"garbage-2", b"g" * 1_500_000, False),
        (b"empty", b"", False),
        (None, None, False),  # a tombstone with a null key
        (None, good, True),  # a null key on a valid event
        (b"binary", rng.randbytes(256), False),
        (b"nested-list", b"[" * nested + b"]" * nested, False),
        (b"nested-object", b'{"a":' * nested + b"1" + b"}" * nested, False),
        (b"nan", good[:-1] + b',"value":NaN}', False),
        (b"infinity", good.replace(b'"value":', b'"value":Infinity,"x":', 1), False),
        (b"overflow", good.replace(b'"value":', b'"value":1e999,"x":', 1), False),
        (b"not-an-object", b"[1,2,3]", False),
        (b"a-number", b"42", False),
        (b"null", b"null", False),
        (b"user-list", _event(rng, 3, user_id=["u"]), False),
        (b"ts-string", _event(rng, 4, ts="yesterday"), False),
        (b"tenant-number", _event(rng, 5, tenant=5), False),
        (b"bad-utf8", _event(rng, 6, user_id="u").replace(b'"u"', b'"\xc3\x28"', 1), False),
        # Fields the schema does not name are ignored unread (README), bytes and all.
        (b"bad-utf8-ignored", good.replace(b'"demo"', b'"\xc3\x28"', 1), True),
        (b"many-keys", orjson.dumps({f"k{i}": i for i in range(50_000)}), False),
    ]


def test_a_hostile_mix_over_six_partitions_is_all_accounted_for(
    procs: Processes, stack: Stack
) -> None:
    """Issue 12.2: no hostile record blocks a partition; each is written or dead-lettered."""
    client = AdminClient(stack.conf)
    topic = NewTopic(
        stack.topics.input,
        num_partitions=HOSTILE_PARTITIONS,
        replication_factor=1,
        config={"max.message.bytes": str(BIG_TOPIC_BYTES)},
    )
    client.create_topics([topic])[stack.topics.input].result(30)
    rng = random.Random(12)
    hostile = _hostile_values(rng)
    mix = [(p, key, value) for p in range(HOSTILE_PARTITIONS) for key, value, _ in hostile]
    mix += [
        (i % HOSTILE_PARTITIONS, b"t", _event(rng, i, tenant=f"t-{i}"))
        for i in range(HOSTILE_TENANTS)  # 10k distinct tenants, one record each
    ]
    rng.shuffle(mix)
    producer = Producer({**stack.conf, "linger.ms": 5, "message.max.bytes": BIG_TOPIC_BYTES})
    for partition, key, value in mix:
        producer.produce(stack.topics.input, value, key, partition=partition)
        producer.poll(0)
    expected_valid = {(p, key) for p in range(HOSTILE_PARTITIONS) for key, _, ok in hostile if ok}
    assert producer.flush(60) == 0
    ends = stack.end_offsets()

    sup = procs.supervisor(stack.env())
    procs.worker(stack.env(SUPERVISOR_GRPC_ADDR=sup.grpc_addr))
    stack.wait_committed_at_end(240, ends)
    assert sup.terminate(timeout=60) == 0, sup.tail()
    assert_committed_at_end(stack.committed(), ends)

    audit = audit_topics(stack.bootstrap, stack.topics.input, stack.topics.output, stack.topics.dlq)
    assert not audit.lost, audit.summary()
    assert not audit.bogus, audit.summary()
    assert audit.duplicates == 0, audit.summary()
    for src in audit.dead_lettered:
        for letter in audit.dead_letters_of(src):
            assert letter.headers.get(h.ERROR), f"a dead letter without a reason: {src}"
            assert letter.headers.get(h.ERROR_KIND), f"a dead letter without a kind: {src}"
    written = {(s[0], audit.inputs[s].key) for s in audit.out_count if audit.inputs[s].key}
    missing = {(p, k) for p, k in expected_valid if k is not None} - written
    assert not missing, f"valid hostile records not written: {sorted(missing)[:5]}"
    hostile_keys = {k for k, _, valid in hostile if not valid and k is not None}
    wrongly_written = {(p, k) for p, k in written if k in hostile_keys}
    assert not wrongly_written, f"invalid records written: {sorted(wrongly_written)[:5]}"
