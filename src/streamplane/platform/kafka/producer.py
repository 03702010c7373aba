"""A durable producer (acks=all, idempotent) and delivery counting for groups of writes.

A :class:`DeliveryGroup` counts the delivery reports of one unit of work (a task's
outputs, a batch of dead letters) and fires once, after its last report, with the
first error if any: a write is durable only when its report says so. Records are
produced with their reports going straight to the group, so the hot path adds no
Python frame of ours per record beyond ``produce`` itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaException, Producer

from streamplane.platform.kafka.errors import (
    MSG_SIZE_TOO_LARGE,
    is_message_too_large,
    translate,
    translated,
)
from streamplane.platform.kafka.exceptions import (
    KafkaPlatformError,
    KafkaUnavailable,
    ProduceFailed,
    QueueFull,
)
from streamplane.platform.kafka.types import DeliveryCallback, Headers, RecordWriter

# How long `produce_waiting` sleeps while the local queue drains.
_QUEUE_WAIT_S = 0.005


class DeliveryGroup:
    """Counts one unit of work's delivery reports; calls ``done(error)`` once, after the last.

    ``written`` is bumped only by the producing thread and ``delivered`` only by the
    thread that polls, so the per-record path takes no lock; the lock guards firing
    ``done`` once. ``too_large`` tells whether any record failed for its size.
    """

    __slots__ = (
        "_done",
        "_fired",
        "_lock",
        "_sealed",
        "by_topic",
        "delivered",
        "error",
        "too_large",
        "written",
    )

    def __init__(self, done: Callable[[str | None], None]) -> None:
        self._done = done
        self._lock = threading.Lock()
        self._sealed = False
        self._fired = False
        self.written = 0
        # Records queued per topic (a worker's write proof); bumped with ``written``.
        self.by_topic: dict[str, int] = {}
        self.delivered = 0
        self.error: str | None = None
        self.too_large = False

    def report(self, err: Any, _msg: Any) -> None:
        """Delivery callback (librdkafka's signature), on the polling thread."""
        if err is not None:
            if self.error is None:
                self.error = str(err)
            if is_message_too_large(err):
                self.too_large = True
        self.delivered += 1
        if self._sealed and self.delivered == self.written:
            self._fire()

    def failed(self, exc: KafkaPlatformError) -> None:
        """A write that was never queued (so no report will come for it)."""
        self.written += 1
        if getattr(exc, "code", None) == MSG_SIZE_TOO_LARGE:
            self.too_large = True
        self.report(_Refused(str(exc)), None)

    def seal(self) -> None:
        """No more writes will be added; fire now if all reports are already in."""
        self._sealed = True
        if self.delivered == self.written:
            self._fire()

    def _fire(self) -> None:
        with self._lock:
            if self._fired:
                return
            self._fired = True
        # Dropped once called: callers' closures often hold the group itself (its
        # `by_topic`), and a cycle through a task's payload would then wait for the
        # cyclic GC, which the hot roles run rarely (platform/runtime.py).
        done, self._done = self._done, _spent
        done(self.error)


def _spent(_error: str | None) -> None:
    """What a fired group's `done` becomes."""


class _Refused:
    """Stands in for librdkafka's error of a record that could not even be queued."""

    def __init__(self, message: str) -> None:
        self._message = message

    def code(self) -> int:
        """No librdkafka code: the record never reached librdkafka's queue."""
        return -1

    def __str__(self) -> str:
        return self._message


class DurableProducer:
    """One librdkafka producer; ``produce`` queues, reports come from ``poll``/``flush``."""

    def __init__(self, conf: Mapping[str, object]) -> None:
        with translated("create producer", KafkaUnavailable):
            self._producer = Producer(dict(conf))

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Headers | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        """Queue one record.

        Raises:
            QueueFull: the local queue is full; poll, then produce again.
            ProduceFailed: librdkafka refused the record outright (too large, say).
        """
        try:
            self._producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
        except BufferError as exc:
            raise QueueFull(str(exc)) from exc
        except KafkaException as exc:
            raise translate(exc, f"produce to {topic!r}", ProduceFailed) from exc

    def produce_waiting(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Headers | None = None,
        on_delivery: DeliveryCallback | None = None,
        poll: bool = False,
    ) -> None:
        """``produce``, waiting while the local queue is full.

        ``poll=True`` serves delivery reports while waiting; leave it False when another
        thread polls (reports must then come from that thread only).
        """
        while True:
            try:
                self.produce(topic, value, key, headers, on_delivery)
                return
            except QueueFull:
                if poll:
                    self._producer.poll(_QUEUE_WAIT_S)
                else:
                    time.sleep(_QUEUE_WAIT_S)

    def writer(self, group: DeliveryGroup) -> RecordWriter:
        """A ``write(topic, key, value, headers)`` that counts each record into ``group``.

        The hot path of a worker: one Python frame and one C call per record. A full
        local queue waits for another thread's ``poll`` to drain it (only that thread
        serves reports, so ``group.report`` never runs concurrently with itself).

        Raises (from ``write``):
            ProduceFailed: librdkafka refused the record outright (too large, say).
        """
        produce = self._producer.produce
        report = group.report
        by_topic = group.by_topic

        def write(topic: str, key: bytes | None, value: bytes, headers: Headers) -> None:
            group.written += 1
            while True:
                try:
                    produce(topic, value, key, headers=headers, on_delivery=report)
                    by_topic[topic] = by_topic.get(topic, 0) + 1
                    return
                except BufferError:
                    time.sleep(_QUEUE_WAIT_S)
                except KafkaException as exc:
                    group.written -= 1
                    raise translate(exc, f"produce to {topic!r}", ProduceFailed) from exc

        return write

    def poll(self, timeout: float = 0) -> int:
        """Serve delivery reports for up to ``timeout`` seconds; returns how many."""
        return int(self._producer.poll(timeout))

    def flush(self, timeout: float) -> int:
        """Wait for outstanding writes; returns how many are still undelivered."""
        return int(self._producer.flush(timeout))

    def __len__(self) -> int:
        """Records queued or in flight."""
        return len(self._producer)
