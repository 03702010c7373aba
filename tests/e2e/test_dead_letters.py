"""One record that fails every attempt, and malformed events: exactly those are dead
letters (with sp-error), and their partitions keep flowing to the end.
"""

from __future__ import annotations

import random

import orjson
import pytest
from confluent_kafka import Producer

from streamplane.dev.demo_events import make_event
from streamplane.platform import headers as h
from streamplane.platform.kafka import admin
from tests.support.audit import Source, assert_committed_at_end, audit_topics, source_of
from tests.support.procs import Processes, Stack

pytestmark = pytest.mark.kafka

PARTITIONS = 3
PER_PARTITION = 400
MAX_ATTEMPTS = 3


def _fill(stack: Stack) -> dict[Source, str]:
    """Write valid events plus a few bad ones at known places; returns the bad ones' kind."""
    admin.ensure_topics(stack.conf, {stack.topics.input: PARTITIONS})
    rng = random.Random(11)
    poison = orjson.loads(make_event(rng, 0, 3, 100, bad=False).value)
    poison["event_type"] = "POISON"
    special: dict[Source, bytes] = {
        (0, 10): orjson.dumps(poison),  # valid JSON: only the poison-aware processor fails it
        (0, 11): b'{"event_id": "cut-off',  # not JSON
        (1, 0): b"[1, 2, 3]",  # JSON, not an object
        (1, 250): orjson.dumps({"event_id": "e", "tenant": "tenant-1"}),  # fields missing
        (2, 399): make_event(rng, 1, 3, 100, bad=True).value,  # the demo's own bad kind
    }
    kinds = {src: "poison" if src == (0, 10) else "malformed" for src in special}
    producer = Producer({**stack.conf, "linger.ms": 5})
    for partition in range(PARTITIONS):
        for offset in range(PER_PARTITION):
            value = special.get((partition, offset))
            if value is None:
                value = make_event(rng, offset, 3, 100, bad=False).value
            producer.produce(stack.topics.input, value, f"user-{offset % 37}", partition=partition)
    assert producer.flush(30) == 0
    return kinds


def test_poison_and_malformed_records_go_to_the_dlq_and_partitions_flow(
    procs: Processes, stack: Stack, record_property: pytest.RecordProperty
) -> None:
    kinds = _fill(stack)
    ends = stack.end_offsets()
    assert ends == dict.fromkeys(range(PARTITIONS), PER_PARTITION), "offsets as planned"

    sup = procs.supervisor(
        stack.env(MAX_ATTEMPTS=MAX_ATTEMPTS, BATCH_MAX_RECORDS=50, RETRY_BACKOFF_MS=20)
    )
    for _ in range(2):
        procs.worker(
            stack.env(
                SUPERVISOR_GRPC_ADDR=sup.grpc_addr,
                WORKER_PROCESSOR="tests.support.processors:poison_aware",
            )
        )
    stack.wait_committed_at_end(90, ends)
    status = sup.status()
    assert sup.terminate(timeout=60) == 0, sup.tail()
    assert_committed_at_end(stack.committed(), ends)

    audit = audit_topics(stack.bootstrap, stack.topics.input, stack.topics.output, stack.topics.dlq)
    record_property("duplicates", audit.duplicates)
    print(f"dead letters: {audit.summary()}; supervisor events {status['events']}")
    assert not audit.lost, audit.summary()
    assert status["events"]["dead_lettered"] == 1, "the supervisor dead-letters the poison only"
    assert status["events"]["failures"].get("reject", 0) >= MAX_ATTEMPTS, status
    assert not audit.bogus
    assert audit.dead_lettered == set(kinds), sorted(audit.dead_lettered)
    assert len(audit.dead) == len(kinds), "each bad record is dead-lettered once"
    assert not audit.in_both
    # The poison-aware processor fails a task before writing anything: no duplicates.
    assert audit.duplicates == 0, audit.summary()
    assert len(audit.outputs) == PARTITIONS * PER_PARTITION - len(kinds)

    for src, kind in kinds.items():
        (letter,) = audit.dead_letters_of(src)
        assert letter.value == audit.inputs[src].value
        assert letter.key == audit.inputs[src].key
        error = letter.headers.get(h.ERROR, b"")
        error_kind = letter.headers.get(h.ERROR_KIND, b"")
        assert error, letter.headers
        assert error_kind, letter.headers
        if kind == "poison":
            # Rejected on MAX_ATTEMPTS attempts of the record on its own.
            assert error_kind == b"reject", letter.headers
            assert b"poison" in error, error
            assert int(letter.headers[h.ATTEMPT]) >= MAX_ATTEMPTS, letter.headers
        else:
            assert error_kind != b"reject", letter.headers

    # The records right after the poison in its partition were written, in one copy.
    after = [r for r in audit.outputs if source_of(r, stack.topics.input) == (0, 12)]
    assert len(after) == 1
