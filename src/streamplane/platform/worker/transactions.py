"""Exactly-once tasks: outputs, dead letters and the input offset in one transaction.

Under PROCESSING_GUARANTEE=exactly_once each task carries the supervisor's group
metadata and the input offset to commit. A task's processor output is buffered; if the
processor raises, nothing of that task reaches Kafka and the attempt is rejected. The
buffered records join the open transaction, and the transaction commits (offsets of
every task in it sent with the group metadata) once no further task waits on the
processing thread: tasks that arrive together commit together, so the commit round
trip is shared. Only after the commit are the tasks answered OK.

A transaction that cannot commit is aborted and its tasks answered RETRY; a fenced
producer (the supervisor took its transactional id away, having given this session up)
answers RETRY too and ends the session, whose successor takes a new id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from streamplane.platform import metrics as m
from streamplane.platform.headers import HeaderList
from streamplane.platform.kafka.exceptions import (
    KafkaPlatformError,
    TransactionAborted,
    TransactionFenced,
)
from streamplane.platform.kafka.transactions import TransactionalProducer
from streamplane.platform.kafka.types import TopicPartition
from streamplane.platform.worker.pipeline import Done
from streamplane.platform.worker.processor import Processor, WorkItem

logger = logging.getLogger(__name__)

_Record = tuple[str, bytes | None, bytes, HeaderList]


@dataclass(frozen=True, slots=True)
class TransactionalTask:
    """What the transaction needs of one task besides its records."""

    item: WorkItem
    tp: TopicPartition
    commit_offset: int
    group_metadata: bytes


@dataclass(slots=True)
class _Joined:
    done: Done
    tp: TopicPartition
    commit_offset: int
    # Records per topic: the task's write proof once the transaction commits.
    written: dict[str, int]


class TransactionalPipeline:
    """The processor writing through one transactional producer; one session's worth.

    Every method runs on the worker's processing thread, except ``close_session``.
    """

    def __init__(
        self,
        processor: Processor,
        producer: TransactionalProducer,
        more_waiting: Callable[[], bool],
        on_fenced: Callable[[], None],
    ) -> None:
        self.processor = processor
        self._producer = producer
        self._more_waiting = more_waiting
        self._on_fenced = on_fenced
        self._joined: list[_Joined] = []
        self._metadata = b""
        self.closed = False

    def run(self, task: TransactionalTask, done: Done) -> None:
        """Process one task into the open transaction; ``done`` fires after its commit.

        Raises whatever the processor raises (the attempt is then rejected); nothing of
        that task was written.
        """
        if self.closed:
            done("session ended before the task ran", {})
            return
        outputs: list[_Record] = []
        self.processor.process(task.item, lambda t, k, v, h: outputs.append((t, k, v, h)))
        if self._joined and task.group_metadata != self._metadata:
            # Offsets of one transaction go with one generation's metadata.
            self._commit()
        joined = _Joined(done, task.tp, task.commit_offset, _per_topic(outputs))
        try:
            self._write(outputs)
        except TransactionFenced as exc:
            self._joined.append(joined)
            self._fail_all(exc)
            return
        except KafkaPlatformError as exc:
            self._fail_all(exc)  # the others retry; this one's records are at fault
            raise
        self._metadata = task.group_metadata
        self._joined.append(joined)
        if not self._more_waiting():
            self._commit()

    def flush(self) -> None:
        """Commit what the open transaction holds (before the processing thread idles)."""
        if self._joined:
            self._commit()

    def close_session(self) -> None:
        """The session ended: tasks not yet run are answered without running."""
        self.closed = True

    def close(self) -> None:
        """Abort what is open and release the producer (on the processing thread)."""
        self.closed = True
        self._fail_all(TransactionAborted("session ended"))
        self._producer.close()

    # -- internals ---------------------------------------------------------------------
    def _write(self, outputs: list[_Record]) -> None:
        producer = self._producer
        if not producer.in_transaction:
            producer.begin()
        for topic, key, value, headers in outputs:
            producer.produce(topic, value, key, headers)

    def _commit(self) -> None:
        joined, self._joined = self._joined, []
        offsets: dict[TopicPartition, int] = {}
        for task in joined:
            offsets[task.tp] = max(offsets.get(task.tp, 0), task.commit_offset)
        try:
            self._producer.commit(offsets, self._metadata)
        except (TransactionAborted, TransactionFenced) as exc:
            self._answer(joined, exc)
            return
        m.WORKER_TRANSACTIONS.labels("committed").inc()
        m.WORKER_TRANSACTION_TASKS.observe(len(joined))
        m.WORKER_RECORDS_OUT.labels("all").inc(sum(sum(t.written.values()) for t in joined))
        for task in joined:
            task.done(None, task.written)

    def _fail_all(self, exc: KafkaPlatformError) -> None:
        joined, self._joined = self._joined, []
        self._producer.abort()
        if joined:
            self._answer(joined, exc)

    def _answer(self, joined: list[_Joined], exc: KafkaPlatformError) -> None:
        fenced = isinstance(exc, TransactionFenced)
        m.WORKER_TRANSACTIONS.labels("fenced" if fenced else "aborted").inc()
        logger.warning(
            "transaction fenced" if fenced else "transaction aborted",
            extra={"tasks": len(joined), "error": str(exc)},
        )
        for task in joined:
            task.done(str(exc) or type(exc).__name__, {})
        if fenced and not self.closed:
            self.closed = True
            self._on_fenced()


def _per_topic(outputs: list[_Record]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for topic, _key, _value, _headers in outputs:
        counts[topic] = counts.get(topic, 0) + 1
    return counts
