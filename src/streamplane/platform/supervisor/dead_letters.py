"""Writes records that exhausted their attempts to the dead-letter topic.

A record's offset may advance only once its dead-letter copy is confirmed written
(acks=all delivery report), so the writer reports back per task.

A record whose dead-letter copy exceeds the broker's message size (MSG_SIZE_TOO_LARGE,
refused at produce or in its report) can never be written whole, and failing its write
would requeue it forever. It gets a truncated dead letter instead: the sp-* source
headers, ``sp-error-kind: too-large``, and a small JSON body with its coordinates, sizes
and the original kind and reason, but neither its payload nor its own headers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson

from streamplane.platform import headers as h
from streamplane.platform import metrics as m
from streamplane.platform.kafka.errors import MSG_SIZE_TOO_LARGE, is_message_too_large
from streamplane.platform.kafka.exceptions import KafkaPlatformError
from streamplane.platform.kafka.producer import DeliveryGroup, DurableProducer
from streamplane.platform.supervisor.tasks import Task

logger = logging.getLogger(__name__)

#: sp-error-kind of a dead letter written without its payload.
TOO_LARGE_KIND = "too-large"
# A key longer than this is left out of a truncated letter too (it may be the culprit).
_MAX_KEPT_KEY_BYTES = 1024


Letter = tuple[bytes | None, bytes | None, h.HeaderList]
"""One dead letter: value, key, headers."""


def whole_letters(task: Task, kind: str, reason: str) -> list[Letter]:
    """The dead letters of every record of `task`: its payload, key and headers kept."""
    records = task.records
    source = h.SourceHeaders(records.topic, records.partition, task.attempt)
    letters: list[Letter] = []
    for i, offset in enumerate(records.offsets):
        tenant = records.tenants[i] if records.tenants else task.tenant
        headers = h.dead_letter_headers(
            list(records.headers_of(i)), source(offset, tenant), kind, reason
        )
        letters.append((records.values[i], records.keys[i], headers))
    return letters


def truncated_letters(task: Task, kind: str, reason: str, indices: list[int]) -> list[Letter]:
    """Letters without payload for the records at `indices` (their copies were too large)."""
    records = task.records
    source = h.SourceHeaders(records.topic, records.partition, task.attempt)
    letters: list[Letter] = []
    for i in indices:
        offset = records.offsets[i]
        tenant = records.tenants[i] if records.tenants else task.tenant
        value, key = records.values[i] or b"", records.keys[i]
        own = records.headers_of(i)
        sizes = {
            "value_bytes": len(value),
            "key_bytes": len(key or b""),
            "headers_bytes": sum(len(n) + len(v or b"") for n, v in own),
        }
        body = orjson.dumps(
            {
                "topic": records.topic,
                "partition": records.partition,
                "offset": offset,
                "tenant": tenant,
                "attempt": task.attempt,
                "kind": kind,
                "reason": reason[: h.MAX_ERROR_BYTES],
                **sizes,
            }
        )
        why = f"dead letter over the broker's size limit ({sizes['value_bytes']} bytes): "
        headers = [
            *source(offset, tenant),
            *h.error_headers(TOO_LARGE_KIND, f"{why}{kind}: {reason}"),
        ]
        kept_key = key if key is not None and len(key) <= _MAX_KEPT_KEY_BYTES else None
        letters.append((body, kept_key, headers))
    return letters


class DeadLetterWriter:
    """Produces dead letters and reports each task's outcome to the caller's ``settle``."""

    def __init__(
        self,
        producer: DurableProducer,
        topic: str,
        on_count: Callable[[str, int], None] | None = None,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._on_count = on_count

    def write(
        self, task: Task, kind: str, reason: str, settle: Callable[[Task, bool], None]
    ) -> None:
        """Produce every record of `task` to the dead-letter topic; ``settle`` follows once."""
        failed: list[int] = []
        too_large: list[int] = []
        delivery = DeliveryGroup(
            lambda error: self._written(task, kind, reason, error, failed, too_large, settle)
        )
        for i, (value, key, headers) in enumerate(whole_letters(task, kind, reason)):
            self._produce(delivery, (failed, too_large), i, value, key, headers)
        delivery.seal()
        logger.warning(
            "records dead-lettered",
            extra={"task": task.task_id, "records": task.size, "kind": kind, "reason": reason},
        )

    def _produce(
        self,
        delivery: DeliveryGroup,
        failures: tuple[list[int], list[int]],
        index: int,
        value: bytes | None,
        key: bytes | None,
        headers: h.HeaderList,
    ) -> None:
        """Produce one letter into `delivery`; a failure is noted in ``failures``.

        ``failures`` is (every failed index, those failed for their size).
        """
        failed, too_large = failures

        def report(err: Any, msg: Any) -> None:
            if err is not None:
                failed.append(index)
                if is_message_too_large(err):
                    too_large.append(index)
            delivery.report(err, msg)

        delivery.written += 1
        try:
            self._producer.produce(self._topic, value, key, headers, report)
        except KafkaPlatformError as exc:
            # Not queued, so no report will come for it: count it as failed now.
            delivery.written -= 1
            failed.append(index)
            if getattr(exc, "code", None) == MSG_SIZE_TOO_LARGE:
                too_large.append(index)
            delivery.failed(exc)

    def _written(
        self,
        task: Task,
        kind: str,
        reason: str,
        error: str | None,
        failed: list[int],
        too_large: list[int],
        settle: Callable[[Task, bool], None],
    ) -> None:
        """The whole letters are in: done, or truncated letters when only size failed them.

        Any other failure fails the write (the dispatcher routes the record again): a
        letter is truncated only when it could never be written whole.
        """
        if error is not None and too_large and set(failed) == set(too_large):
            self._write_truncated(task, kind, reason, sorted(set(too_large)), settle)
            return
        self._settle(task, kind, error, settle)

    def _write_truncated(
        self,
        task: Task,
        kind: str,
        reason: str,
        indices: list[int],
        settle: Callable[[Task, bool], None],
    ) -> None:
        delivery = DeliveryGroup(
            lambda error: self._truncated_written(task, kind, len(indices), error, settle)
        )
        for i, (value, key, headers) in zip(
            indices, truncated_letters(task, kind, reason, indices), strict=True
        ):
            self._produce(delivery, ([], []), i, value, key, headers)
        delivery.seal()

    def _truncated_written(
        self,
        task: Task,
        kind: str,
        count: int,
        error: str | None,
        settle: Callable[[Task, bool], None],
    ) -> None:
        if error is None:
            m.DEAD_LETTERS_TRUNCATED.labels(kind).inc(count)
            logger.warning(
                "dead letters truncated: over the broker's size limit",
                extra={"task": task.task_id, "records": count, "kind": kind},
            )
        self._settle(task, kind, error, settle)

    def _settle(
        self, task: Task, kind: str, error: str | None, settle: Callable[[Task, bool], None]
    ) -> None:
        if error is not None:
            logger.error("dead-letter write failed", extra={"task": task.task_id, "error": error})
            settle(task, False)
            return
        if self._on_count is not None:
            self._on_count(kind, task.size)
        settle(task, True)

    def poll(self) -> None:
        """Serve delivery reports; call often from the event loop."""
        self._producer.poll(0)

    def flush(self, timeout: float) -> int:
        """Wait for outstanding writes; returns how many are still undelivered."""
        return self._producer.flush(timeout)
