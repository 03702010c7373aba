"""The supervisor's side of PROCESSING_GUARANTEE=exactly_once (docs/exactly-once.md).

Workers commit their tasks' outputs and input offsets in their own transactions; the
supervisor commits no offset itself. It does three things here, on one thread of its
own because each is a blocking round trip to Kafka:

- hands out its consumer group metadata, stamped on every task at dispatch;
- fences a worker session it gave up (stream lost, lease expired): it takes the
  session's transactional id, so the worker's open transaction aborts and it can never
  commit again, then reads the committed offsets to learn which of the session's tasks
  did commit before the fence (those are done; the rest are dispatched again);
- writes the dead letters of records out of attempts in a transaction that commits
  their offset too, so no path moves an offset outside a transaction.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import uuid
from collections.abc import Callable, Mapping

from streamplane.platform import metrics as m
from streamplane.platform.kafka.consumer import GroupConsumer
from streamplane.platform.kafka.errors import MSG_SIZE_TOO_LARGE
from streamplane.platform.kafka.exceptions import (
    KafkaPlatformError,
    ProduceFailed,
    TransactionAborted,
    TransactionFenced,
)
from streamplane.platform.kafka.transactions import (
    TransactionalProducer,
    fence,
    transactional_config,
)
from streamplane.platform.supervisor.dead_letter_counts import count_by_tenant
from streamplane.platform.supervisor.dead_letters import (
    Letter,
    truncated_letters,
    whole_letters,
)
from streamplane.platform.supervisor.tasks import Task, TopicPartition

logger = logging.getLogger(__name__)

Fenced = Callable[[list[Task], dict[TopicPartition, int]], None]
"""Called on the loop with a fenced session's tasks and their partitions' committed offsets."""

# Retrying a fence: the coordinator may be moving; the tasks wait (their lanes held).
_FIRST_RETRY_S = 0.2
_MAX_RETRY_S = 5.0
_TOO_LARGE = "too-large"


class SupervisorTransactions:
    """Group metadata for tasks, fencing of lost sessions, transactional dead letters."""

    def __init__(
        self,
        *,
        producer_conf: Mapping[str, object],
        consumer_conf: Mapping[str, object],
        dlq_topic: str,
        id_prefix: str,
        timeout_ms: int,
        group_metadata: Callable[[], bytes],
    ) -> None:
        self._producer_conf = dict(producer_conf)
        self._consumer_conf = dict(consumer_conf)
        self._dlq_topic = dlq_topic
        self._id_prefix = id_prefix
        self._timeout_ms = timeout_ms
        self._timeout_s = timeout_ms / 1000
        self.group_metadata = group_metadata
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "sp-transactions")
        self._producer: TransactionalProducer | None = None
        self._offsets: GroupConsumer | None = None
        self._closing = threading.Event()
        self._jobs = 0
        self._jobs_lock = threading.Lock()

    # -- fencing ------------------------------------------------------------------------
    def fence(self, transactional_id: str, tasks: list[Task], settle: Fenced) -> None:
        """Fence `transactional_id`, then ``settle(tasks, committed)`` on the loop."""
        loop = asyncio.get_running_loop()
        self._submit(self._fence_job, transactional_id, tasks, settle, loop)

    def _fence_job(
        self,
        transactional_id: str,
        tasks: list[Task],
        settle: Fenced,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        tps = {task.tp for task in tasks}
        delay = _FIRST_RETRY_S
        while not self._closing.is_set():
            try:
                if transactional_id:
                    conf = transactional_config(
                        self._producer_conf, transactional_id, self._timeout_ms
                    )
                    fence(conf, self._timeout_s)
                committed = self._committed(tps) if tps else {}
            except KafkaPlatformError as exc:
                logger.warning(
                    "fencing a lost worker failed; retrying",
                    extra={"transactional_id": transactional_id, "error": str(exc)},
                )
                self._closing.wait(delay)
                delay = min(delay * 2, _MAX_RETRY_S)
                continue
            m.TRANSACTIONS.labels("fenced").inc()
            logger.info(
                "lost worker fenced",
                extra={"transactional_id": transactional_id, "tasks": len(tasks)},
            )
            loop.call_soon_threadsafe(settle, tasks, committed)
            return

    def _committed(self, tps: set[TopicPartition]) -> dict[TopicPartition, int]:
        if self._offsets is None:
            self._offsets = GroupConsumer(self._consumer_conf)
        return self._offsets.committed(tps, self._timeout_s)

    # -- dead letters (the dispatcher's DeadLetters) -------------------------------------
    def write(
        self, task: Task, kind: str, reason: str, settle: Callable[[Task, bool], None]
    ) -> None:
        """Write `task`'s dead letters and commit its offset in one transaction."""
        loop = asyncio.get_running_loop()
        metadata = self.group_metadata()

        def job() -> None:
            written = self._dead_letter_job(task, kind, reason, metadata)
            loop.call_soon_threadsafe(self._settled, task, kind, written, settle)

        self._submit(job)

    def _dead_letter_job(self, task: Task, kind: str, reason: str, metadata: bytes) -> bool:
        outcome = self._commit_letters(task, whole_letters(task, kind, reason), metadata)
        if outcome == _TOO_LARGE:
            # Never writable whole: the letters without payload (see dead_letters.py).
            indices = list(range(task.size))
            letters = truncated_letters(task, kind, reason, indices)
            outcome = self._commit_letters(task, letters, metadata)
            if outcome == "committed":
                m.DEAD_LETTERS_TRUNCATED.labels(kind).inc(task.size)
        return outcome == "committed"

    def _commit_letters(self, task: Task, letters: list[Letter], metadata: bytes) -> str:
        try:
            producer = self._transactional_producer()
            producer.begin()
            for value, key, headers in letters:
                producer.produce(self._dlq_topic, value, key, headers)
            producer.commit({task.tp: task.commit_offset}, metadata)
        except ProduceFailed as exc:
            self._abort()
            return _TOO_LARGE if exc.code == MSG_SIZE_TOO_LARGE else self._failed(task, exc)
        except TransactionFenced as exc:
            self._producer = None  # a new id next time
            return self._failed(task, exc)
        except (TransactionAborted, KafkaPlatformError) as exc:
            self._abort()
            if "MSG_SIZE_TOO_LARGE" in str(exc):
                return _TOO_LARGE
            return self._failed(task, exc)
        return "committed"

    def _transactional_producer(self) -> TransactionalProducer:
        if self._producer is None:
            tid = f"sp-supervisor-{self._id_prefix}-{uuid.uuid4().hex[:12]}"
            conf = transactional_config(self._producer_conf, tid, self._timeout_ms)
            self._producer = TransactionalProducer(conf, self._timeout_s)
        return self._producer

    def _abort(self) -> None:
        if self._producer is not None:
            self._producer.abort()

    def _failed(self, task: Task, exc: Exception) -> str:
        logger.error(
            "dead-letter transaction failed", extra={"task": task.task_id, "error": str(exc)}
        )
        return "aborted"

    def _settled(
        self, task: Task, kind: str, written: bool, settle: Callable[[Task, bool], None]
    ) -> None:
        m.TRANSACTIONS.labels("committed" if written else "aborted").inc()
        if written:
            m.DEAD_LETTERED.labels(kind).inc(task.size)
            count_by_tenant(task, kind)
            logger.warning(
                "records dead-lettered",
                extra={"task": task.task_id, "records": task.size, "kind": kind},
            )
        settle(task, written)

    # -- lifecycle ----------------------------------------------------------------------
    def _submit(self, fn: Callable[..., None], *args: object) -> None:
        if self._closing.is_set():
            # A session ending while the supervisor stops: its transactions abort with
            # the worker's session or time out, and commit nothing the group accepts.
            logger.info("stopping: job not run", extra={"job": fn.__name__})
            return
        with self._jobs_lock:
            self._jobs += 1

        def run() -> None:
            try:
                fn(*args)
            finally:
                with self._jobs_lock:
                    self._jobs -= 1

        self._executor.submit(run)

    def poll(self) -> None:
        """Nothing to serve: transactions are synchronous on their own thread."""

    def flush(self, timeout: float) -> int:
        """Wait up to `timeout` s for queued jobs; returns how many are left."""
        done = threading.Event()
        self._executor.submit(done.set)
        done.wait(timeout)
        with self._jobs_lock:
            return self._jobs

    def close(self) -> None:
        """Stop retrying fences; release the producer (after the queued jobs)."""
        self._closing.set()

        def release() -> None:
            if self._producer is not None:
                self._producer.close()
            if self._offsets is not None:
                self._offsets.close()

        self._executor.submit(release)
        self._executor.shutdown(wait=True, cancel_futures=False)
