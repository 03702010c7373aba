"""The supervisor's Kafka consumer: fetch, batch, backpressure, rebalance and commit.

The consumer is owned by one asyncio task; blocking `consume` calls run in a dedicated
thread. Rebalance callbacks fire inside `consume`, on that thread, while the event loop
is free (it awaits the same call), so they hop onto the loop and wait for it: all
dispatch state is touched by the loop thread only.

Backpressure holds before it pauses. Above the pending bound the source stops taking
records and leaves them in librdkafka's prefetch, which is bounded
(`queued.max.messages.kbytes`) and stops fetching once full. librdkafka's own pause
would purge that prefetch, and the resume would fetch, decompress and parse it all
again: under a backlog, where the bound is reached every few hundred milliseconds, that
was over half the supervisor's CPU per record (docs/performance.md). While held, a
one-record consume every HOLD_EVENTS_S serves the group's events (rebalances run inside
`consume`); should the records taken that way reach CONSUME_BATCH (or the bound itself,
if smaller), fetching pauses outright, so the bound still holds when no worker drains
anything for minutes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from streamplane.platform import metrics as m
from streamplane.platform.kafka.consumer import BEGINNING, GroupConsumer
from streamplane.platform.kafka.exceptions import CommitFailed, KafkaPlatformError
from streamplane.platform.kafka.types import Message, TopicPartition
from streamplane.platform.supervisor import completed_offsets
from streamplane.platform.supervisor.batching import Batcher
from streamplane.platform.supervisor.completed_offsets import Skips
from streamplane.platform.supervisor.dispatcher import Dispatcher
from streamplane.platform.supervisor.ledger import CommitPoint
from streamplane.platform.supervisor.offsets import OffsetTracker

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Records taken per consume call: big enough to amortise the thread hop, small enough
# that the loop serves acks between calls.
CONSUME_BATCH = 2000

# While held above the pending bound: how often a one-record consume serves the group's
# events. A rebalance waits at most this long; the records it takes are at most 10 a second.
HOLD_EVENTS_S = 0.1

# How long an assignment waits to read the committed offsets before leaving them to
# librdkafka (under exactly-once they wait for open transactions to settle).
COMMITTED_TIMEOUT_S = 5.0


class Source:
    """Consumes INPUT_TOPIC into the dispatcher, pausing above the pending bound."""

    def __init__(
        self,
        *,
        consumer_factory: Callable[[], GroupConsumer],
        topic: str,
        dispatcher: Dispatcher,
        batcher: Batcher,
        high_mark: int,
        low_mark: int,
        linger_s: float,
        commit_interval_s: float,
        on_tick: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
        commits: bool = True,
    ) -> None:
        self._factory = consumer_factory
        self._topic = topic
        self._dispatcher = dispatcher
        self._batcher = batcher
        self._high = high_mark
        self._low = low_mark
        self._poll_s = max(0.005, min(linger_s, 0.1))
        self._commit_interval_s = commit_interval_s
        self._on_tick = on_tick
        self._clock = clock
        self._consumer: GroupConsumer | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "sp-consumer")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_commit: dict[TopicPartition, CommitPoint] = {}
        # Held: above the bound, taking no records (see the module docstring).
        self.paused = False
        # librdkafka's pause applied too: records taken while held reached the slack.
        self._fetch_paused = False
        self._next_events = 0.0
        self.assigned: set[TopicPartition] = set()
        self._consume_batch = CONSUME_BATCH
        # Whether the last consume came back short while fetching: nothing more waits
        # in Kafka, so a lingering batch would gain no records, only latency.
        self._caught_up = False
        # False under exactly_once: workers commit offsets in their transactions.
        self._commits = commits
        # The group metadata of the current generation (read at each assignment).
        self.group_metadata = b""

    # -- lifecycle --------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; the caller then drains and calls `close`."""
        self._loop = asyncio.get_running_loop()
        consumer = self._consumer = self._factory()
        consumer.subscribe(
            [self._topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        next_commit = self._clock() + self._commit_interval_s
        while not stop.is_set():
            asked = self._take_size()
            msgs = await self._fetch(consumer, asked)
            now = self._clock()
            self._take(msgs, now, asked)
            self._backpressure(consumer)
            self._on_tick()
            if now >= next_commit:
                self.commit(asynchronous=True)
                next_commit = now + self._commit_interval_s

    @property
    def _slack(self) -> int:
        """Records the held source's event polls may take before fetching pauses outright."""
        return min(self._consume_batch, self._high)

    def _take_size(self) -> int:
        """How many records the next consume may take: what the bound still has room for.

        Capped so that taking never overshoots the bound, which leaves the hold its whole
        slack.
        """
        room = self._high - self._dispatcher.pending_records
        return max(1, min(self._consume_batch, room))

    async def _fetch(self, consumer: GroupConsumer, asked: int) -> list[Message]:
        """One consume call; while held, only a one-record call now and then, for events."""
        assert self._loop is not None
        if not self.paused:
            return await self._loop.run_in_executor(
                self._executor, consumer.consume, asked, self._poll_s
            )
        await asyncio.sleep(self._poll_s)
        now = self._clock()
        if now < self._next_events:
            return []
        self._next_events = now + HOLD_EVENTS_S
        return await self._loop.run_in_executor(self._executor, consumer.consume, 1, 0)

    def _take(self, msgs: list[Message], now: float, asked: int) -> None:
        """Hand one consume call's records to the batcher, then dispatch."""
        self._caught_up = len(msgs) < asked and not self.paused
        if msgs:
            m.observe_age(m.AGE_CONSUMED, msgs[0].timestamp()[1])
            self._ingest(msgs, now)
        self._dispatch(now)

    def dispatch_now(self) -> None:
        """Dispatch, closing lingering batches for idle credit (on an ack or new credit)."""
        self._dispatch(self._clock())

    def _dispatch(self, now: float) -> None:
        """Send what is queued; close batches for idle credit, stale ones anyway.

        A batch closes for idle credit once it has lingered, or at once while the input
        has caught up.
        """
        dispatcher = self._dispatcher
        dispatcher.dispatch()
        if dispatcher.draining:
            return
        idle = dispatcher.idle_credit()
        batcher = self._batcher
        if idle > 0:
            closed = batcher.flush_due(now, limit=idle, eager=self._caught_up)
        else:
            closed = batcher.flush_stale(now)
        if closed:
            dispatcher.dispatch()

    def flush_open_batches(self) -> None:
        """Close every open batch now (on drain: no more records will join them)."""
        self._batcher.flush_due(self._clock(), force=True)

    async def close(self) -> None:
        """Final synchronous commit, then leave the group."""
        consumer = self._consumer
        if consumer is None:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._final_commit)
            await loop.run_in_executor(self._executor, consumer.close)
        finally:
            self._consumer = None
            self._executor.shutdown(wait=False)

    def _final_commit(self) -> None:
        # Runs on the consumer thread; the loop is awaiting us, so reading state is safe.
        self.commit(asynchronous=False)

    # -- the hot path -----------------------------------------------------------------
    def _ingest(self, msgs: list[Message], now: float) -> None:
        ledger = self._dispatcher.ledger
        add = self._batcher.add
        # Offsets are registered once per partition after the loop, not per record: no
        # completion can arrive before this method returns (acks run on this thread).
        consumed: dict[TopicPartition, list[int]] = {}
        trackers: dict[TopicPartition, OffsetTracker] = {}
        floors: dict[TopicPartition, int] = {}
        rewound: dict[TopicPartition, int] = {}
        skipped: dict[TopicPartition, list[int]] = {}
        count = 0
        for msg in msgs:
            tp = (msg.topic(), msg.partition())
            offset = msg.offset()
            tracker = trackers.get(tp)
            if tracker is None:
                tracker = ledger.tracker(tp)
                if tracker is None:
                    continue  # revoked between fetch and now: the new owner reads it
                trackers[tp] = tracker
                consumed[tp] = []
                floors[tp] = tracker.next_offset or 0
            if offset < floors[tp]:
                # librdkafka can restart a partition's fetch below what this generation
                # already took (a pause racing the assignment falls back to
                # auto.offset.reset): those records are handled or in flight already.
                rewound[tp] = floors[tp]
                continue
            floors[tp] = offset + 1
            consumed[tp].append(offset)
            if tracker.skips is not None and offset in tracker.skips:
                skipped.setdefault(tp, []).append(offset)
                continue
            add(
                tp,
                tracker,
                offset,
                msg.key(),
                msg.value() or b"",
                msg.headers(),
                msg.timestamp()[1],
                now,
            )
            count += 1
        for key, offsets in consumed.items():
            if offsets:
                ledger.register(key, offsets)
        if count:
            m.RECORDS_CONSUMED.inc(count)
        if skipped:
            self._skip(trackers, skipped, floors)
        if rewound:
            self._seek(rewound)

    def _skip(
        self,
        trackers: dict[TopicPartition, OffsetTracker],
        skipped: dict[TopicPartition, list[int]],
        floors: dict[TopicPartition, int],
    ) -> None:
        """Complete records the partition's previous owner completed above its commit."""
        for tp, offsets in skipped.items():
            tracker = trackers[tp]
            tracker.complete(offsets)
            m.RECORDS_SKIPPED.inc(len(offsets))
            if tracker.skips is not None and floors[tp] >= tracker.skips.last:
                tracker.skips = None  # past the last completed run: nothing more to skip

    def _seek(self, positions: dict[TopicPartition, int]) -> None:
        """Put rewound partitions back where this generation's records end."""
        consumer = self._consumer
        assert consumer is not None
        for tp, offset in positions.items():
            m.FETCH_REWINDS.inc()
            logger.warning(
                "fetch went below the records already taken; seeking back",
                extra={"partition": tp[1], "offset": offset},
            )
            try:
                consumer.seek(tp, offset)
            except KafkaPlatformError as exc:
                # Skipping by offset still holds: the records below are dropped above.
                logger.warning("seek failed", extra={"partition": tp[1], "error": str(exc)})

    def _backpressure(self, consumer: GroupConsumer) -> None:
        pending = self._dispatcher.pending_records
        if not self.paused and pending >= self._high:
            self.paused = True
            m.PAUSED.set(1)
            logger.info("paused fetching", extra={"pending": pending, "how": "held"})
        elif self.paused and pending <= self._low:
            if self._fetch_paused:
                consumer.resume(self.assigned)
                self._fetch_paused = False
            self.paused = False
            m.PAUSED.set(0)
            logger.info("resumed fetching", extra={"pending": pending})
        elif self.paused and not self._fetch_paused and pending >= self._high + self._slack:
            consumer.pause(self.assigned)
            self._fetch_paused = True
            logger.info("paused fetching", extra={"pending": pending, "how": "librdkafka"})

    # -- commits ----------------------------------------------------------------------
    def commit(self, asynchronous: bool) -> None:
        """Commit what moved since the last commit."""
        consumer = self._consumer
        if consumer is None or not self._commits:
            return
        changed = {
            tp: point
            for tp, point in self._dispatcher.commit_points().items()
            if self._last_commit.get(tp) != point
        }
        self._commit(consumer, changed, asynchronous)

    def _commit(
        self, consumer: GroupConsumer, points: dict[TopicPartition, CommitPoint], asynchronous: bool
    ) -> None:
        if not points:
            return
        offsets = {tp: point.offset for tp, point in points.items()}
        metadata = {tp: point.metadata for tp, point in points.items()}
        try:
            consumer.commit(offsets, asynchronous=asynchronous, metadata=metadata)
        except CommitFailed as exc:
            m.COMMITS.labels("error").inc()
            logger.warning("commit failed", extra={"error": str(exc)})
            return
        m.COMMITS.labels("ok").inc()
        for (topic, partition), point in points.items():
            self._last_commit[(topic, partition)] = point
            m.COMMITTED_OFFSET.labels(topic, str(partition)).set(point.offset)

    # -- rebalance (called on the consumer thread) ------------------------------------
    def _on_loop(self, fn: Callable[[], T]) -> T:
        assert self._loop is not None
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(call)
        return future.result()

    def _on_assign(self, partitions: list[TopicPartition]) -> None:
        starts: dict[TopicPartition, tuple[int, str]] = {}
        if self._consumer is not None:
            # The generation changed: tasks dispatched from now on carry the new one.
            self.group_metadata = self._consumer.group_metadata()
            starts = self._pin_starts(self._consumer, partitions)

        def assign() -> None:
            for tp in partitions:
                start, metadata = starts.get(tp, (None, ""))
                runs = completed_offsets.decode(start, metadata) if start is not None else []
                self._dispatcher.assign(tp, start, Skips(runs) if runs else None)
                self.assigned.add(tp)
            m.ASSIGNED_PARTITIONS.set(len(self.assigned))

        self._on_loop(assign)
        if self._consumer is not None:
            if self._fetch_paused:
                # New partitions start paused too, or a backlog could overrun the bound.
                self._consumer.pause(partitions)
            else:
                # librdkafka keeps a partition's pause across a revoke and a new assign: a
                # partition paused before the rebalance, resumed by no one (the resume
                # that followed the revoke found nothing assigned), came back paused for
                # good (a supervisor of the 1M-record exactly_once rebalance test sat on
                # three partitions for 500 s).
                self._consumer.resume(partitions)
        logger.info("partitions assigned", extra={"partitions": [p for _, p in partitions]})

    def _pin_starts(
        self, consumer: GroupConsumer, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, tuple[int, str]]:
        """Assign the partitions at their committed offsets; returns them with metadata.

        Left to librdkafka, a partition's start stays "the committed offset, once read",
        and a pause and resume before it is read restart it at auto.offset.reset (the
        beginning): explicit offsets leave nothing to resolve late. The offsets also floor
        what this generation takes (see `_ingest`), and the metadata says what is
        complete above them.
        """
        try:
            committed = consumer.commits(partitions, timeout=COMMITTED_TIMEOUT_S)
        except KafkaPlatformError as exc:
            logger.warning(
                "committed offsets unreadable at assignment; librdkafka resolves them",
                extra={"error": str(exc)},
            )
            return {}
        consumer.assign({tp: committed.get(tp, (BEGINNING, ""))[0] for tp in partitions})
        return committed

    def _on_revoke(self, partitions: list[TopicPartition]) -> None:
        offsets = self._on_loop(lambda: self._revoke(partitions))
        if self._consumer is not None and self._commits:
            self._commit(self._consumer, offsets, asynchronous=False)
        logger.info("partitions revoked", extra={"partitions": [p for _, p in partitions]})

    def _on_lost(self, partitions: list[TopicPartition]) -> None:
        # Lost, not revoked: another member may already own them, so commit nothing.
        self._on_loop(lambda: self._revoke(partitions))
        logger.warning("partitions lost", extra={"partitions": [p for _, p in partitions]})

    def _revoke(self, partitions: list[TopicPartition]) -> dict[TopicPartition, CommitPoint]:
        keys = set(partitions)
        self._batcher.drop_partitions(keys)
        offsets = self._dispatcher.revoke(keys)
        self.assigned -= keys
        for key in keys:
            self._last_commit.pop(key, None)
        m.ASSIGNED_PARTITIONS.set(len(self.assigned))
        return offsets
