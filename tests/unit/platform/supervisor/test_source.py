"""The source: its guard against librdkafka restarting a partition below what it took,
its backpressure (hold, then pause), and when batches close without lingering.

A pause racing an assignment can make librdkafka fetch a partition from
auto.offset.reset (its beginning) after records of the same generation were taken: the
source pins each assignment to the committed offsets, drops records below what it took
and seeks back, instead of registering offsets out of order (which stopped a supervisor
in CI).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from streamplane.platform.kafka.consumer import BEGINNING
from streamplane.platform.kafka.exceptions import KafkaUnavailable
from streamplane.platform.kafka.types import Message, TopicPartition
from streamplane.platform.supervisor import completed_offsets
from streamplane.platform.supervisor.batching import Batcher
from streamplane.platform.supervisor.source import HOLD_EVENTS_S, Source
from streamplane.platform.supervisor.tasks import Task
from tests.unit.platform.supervisor.factories import (
    FakeClock,
    FakeDeadLetters,
    RecordingTransport,
    make_dispatcher,
)

TP: TopicPartition = ("in", 0)
OTHER: TopicPartition = ("in", 1)


@dataclass
class FakeMessage:
    tp: TopicPartition
    at: int

    def topic(self) -> str:
        return self.tp[0]

    def partition(self) -> int:
        return self.tp[1]

    def offset(self) -> int:
        return self.at

    def key(self) -> bytes | None:
        return None

    def value(self) -> bytes:
        return b'{"tenant": "t"}'

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (1, 0)

    def error(self) -> None:
        return None


@dataclass
class FakeConsumer:
    """Records what the source asks of its consumer."""

    committed_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    metadata: dict[TopicPartition, str] = field(default_factory=dict)
    unreadable: bool = False
    assigned: dict[TopicPartition, int] = field(default_factory=dict)
    seeks: list[tuple[TopicPartition, int]] = field(default_factory=list)

    def commits(
        self, partitions: list[TopicPartition], timeout: float
    ) -> dict[TopicPartition, tuple[int, str]]:
        if self.unreadable:
            raise KafkaUnavailable("coordinator moving")
        return {
            tp: (o, self.metadata.get(tp, ""))
            for tp, o in self.committed_offsets.items()
            if tp in partitions
        }

    def assign(self, starts: dict[TopicPartition, int]) -> None:
        self.assigned = dict(starts)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))

    def group_metadata(self) -> bytes:
        return b"CGMD"

    def commit(self, offsets: object, asynchronous: bool, metadata: object) -> None:
        pass

    # librdkafka's pause flags: they outlive a revoke and a new assign.
    paused: set[TopicPartition] = field(default_factory=set)
    consumed: list[tuple[int, float]] = field(default_factory=list)

    def consume(self, max_records: int, timeout: float) -> list[Message]:
        self.consumed.append((max_records, timeout))
        return []

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        self.paused |= set(partitions)

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        self.paused -= set(partitions)


def make_source(consumer: FakeConsumer) -> tuple[Source, list[Task]]:
    clock = FakeClock()
    dispatcher = make_dispatcher(clock, FakeDeadLetters())
    emitted: list[Task] = []
    batcher = Batcher(
        ordering="unordered",
        max_records=1000,
        max_bytes=1 << 20,
        linger_s=0.005,
        id_prefix="t",
        emit=emitted.append,
    )
    source = Source(
        consumer_factory=lambda: consumer,  # type: ignore[arg-type,return-value]
        topic="in",
        dispatcher=dispatcher,
        batcher=batcher,
        high_mark=10_000,
        low_mark=1_000,
        linger_s=0.005,
        commit_interval_s=1.0,
        on_tick=lambda: None,
        clock=clock,
    )
    source._consumer = consumer  # type: ignore[assignment]
    return source, emitted


def assign(source: Source, partitions: list[TopicPartition]) -> None:
    """Run the rebalance callback on another thread, as librdkafka does."""

    async def main() -> None:
        source._loop = asyncio.get_running_loop()
        await source._loop.run_in_executor(None, source._on_assign, partitions)

    asyncio.run(main())


def messages(tp: TopicPartition, offsets: range) -> list[Message]:
    return [FakeMessage(tp, o) for o in offsets]


def test_assignment_pins_committed_offsets_and_the_beginning_elsewhere() -> None:
    consumer = FakeConsumer(committed_offsets={TP: 1474})
    source, _ = make_source(consumer)
    assign(source, [TP, OTHER])
    assert consumer.assigned == {TP: 1474, OTHER: BEGINNING}
    tracker = source._dispatcher.ledger.tracker(TP)
    assert tracker is not None
    assert tracker.next_offset == 1474


def test_unreadable_committed_offsets_leave_the_start_to_librdkafka() -> None:
    consumer = FakeConsumer(unreadable=True)
    source, _ = make_source(consumer)
    assign(source, [TP])
    assert consumer.assigned == {}
    assert source._dispatcher.ledger.tracker(TP) is not None


def test_a_fetch_restarted_at_the_beginning_is_dropped_and_sought_back() -> None:
    consumer = FakeConsumer(committed_offsets={TP: 1474})
    source, _ = make_source(consumer)
    assign(source, [TP, OTHER])
    source._ingest(messages(TP, range(1474, 1500)) + messages(OTHER, range(0, 5)), 1000.0)
    # The rewind arrives in the next batch and in the middle of one.
    source._ingest(messages(TP, range(0, 10)), 1000.0)
    source._ingest(messages(TP, range(1500, 1510)) + messages(TP, range(1490, 1495)), 1000.0)
    ledger = source._dispatcher.ledger
    tracker = ledger.tracker(TP)
    assert tracker is not None
    assert tracker.next_offset == 1510
    assert tracker.outstanding == 36  # 1474..1509, each once
    assert consumer.seeks == [(TP, 1500), (TP, 1510)]
    other = ledger.tracker(OTHER)
    assert other is not None
    assert other.outstanding == 5


def test_records_below_the_committed_offset_are_never_taken() -> None:
    consumer = FakeConsumer(committed_offsets={TP: 100})
    source, _ = make_source(consumer)
    assign(source, [TP])
    source._ingest(messages(TP, range(0, 3)), 1000.0)
    tracker = source._dispatcher.ledger.tracker(TP)
    assert tracker is not None
    assert tracker.outstanding == 0
    assert consumer.seeks == [(TP, 100)]


def test_records_the_previous_owner_completed_are_taken_but_never_dispatched() -> None:
    completed = {12, 13, 14, 20}
    consumer = FakeConsumer(
        committed_offsets={TP: 10}, metadata={TP: completed_offsets.encode(10, completed)}
    )
    source, emitted = make_source(consumer)
    assign(source, [TP])
    tracker = source._dispatcher.ledger.tracker(TP)
    assert tracker is not None
    assert tracker.skips is not None
    source._ingest(messages(TP, range(10, 16)), 1000.0)
    source._ingest(messages(TP, range(16, 25)), 1000.0)
    source.flush_open_batches()
    dispatched = {o for task in emitted for o in task.offsets}
    assert dispatched == set(range(10, 25)) - completed
    assert tracker.outstanding == len(dispatched)
    assert tracker.skips is None  # past the last completed run
    for task in emitted:
        source._dispatcher.ledger.complete(task)
    assert tracker.committable() == 25


def test_metadata_for_another_offset_skips_nothing() -> None:
    consumer = FakeConsumer(
        committed_offsets={TP: 10}, metadata={TP: completed_offsets.encode(9, {12, 13})}
    )
    source, emitted = make_source(consumer)
    assign(source, [TP])
    source._ingest(messages(TP, range(10, 15)), 1000.0)
    source.flush_open_batches()
    assert {o for task in emitted for o in task.offsets} == set(range(10, 15))


def revoke(source: Source, partitions: list[TopicPartition]) -> None:
    """Run the revoke callback on another thread, as librdkafka does."""

    async def main() -> None:
        source._loop = asyncio.get_running_loop()
        await source._loop.run_in_executor(None, source._on_revoke, partitions)

    asyncio.run(main())


def take(source: Source, consumer: FakeConsumer, tp: TopicPartition, offsets: range) -> None:
    """One consume call's records, then the backpressure check that follows it."""
    source._ingest(messages(tp, offsets), 0.0)
    source._backpressure(consumer)  # type: ignore[arg-type]


def hold_and_pause(source: Source, consumer: FakeConsumer, tp: TopicPartition) -> None:
    """Fill the bound (the source holds), then its slack (librdkafka pauses too)."""
    take(source, consumer, tp, range(10_000))
    take(source, consumer, tp, range(10_000, 12_000))


def test_above_the_bound_the_source_holds_and_keeps_librdkafkas_prefetch() -> None:
    """Pausing would purge librdkafka's prefetch and the resume fetch it all again."""
    consumer = FakeConsumer()
    source, _ = make_source(consumer)
    assign(source, [TP])
    take(source, consumer, TP, range(10_000))
    assert source.paused
    assert consumer.paused == set(), "held, not paused in librdkafka"
    source._dispatcher.ledger.tracker(TP).complete(list(range(9_500)))  # type: ignore[union-attr]
    source._backpressure(consumer)  # type: ignore[arg-type]
    assert not source.paused


def test_records_taken_while_held_past_the_slack_pause_librdkafka() -> None:
    """The held source's event polls take a record at a time: the bound must still hold
    while no worker drains anything, so past CONSUME_BATCH of them fetching pauses."""
    consumer = FakeConsumer()
    source, _ = make_source(consumer)
    assign(source, [TP])
    take(source, consumer, TP, range(10_000))
    take(source, consumer, TP, range(10_000, 11_999))
    assert consumer.paused == set()
    take(source, consumer, TP, range(11_999, 12_000))
    assert consumer.paused == {TP}
    source._dispatcher.ledger.tracker(TP).complete(list(range(11_500)))  # type: ignore[union-attr]
    source._backpressure(consumer)  # type: ignore[arg-type]
    assert not source.paused
    assert consumer.paused == set()


def test_under_a_small_bound_the_slack_is_the_bound() -> None:
    """Pending records never exceed twice the bound, however small it is."""
    consumer = FakeConsumer()
    source, _ = make_source(consumer)
    source._high, source._low = 100, 50
    assign(source, [TP])
    take(source, consumer, TP, range(100))
    take(source, consumer, TP, range(100, 199))
    assert consumer.paused == set()
    take(source, consumer, TP, range(199, 200))
    assert consumer.paused == {TP}


def test_a_take_never_overshoots_the_bound() -> None:
    consumer = FakeConsumer()
    source, _ = make_source(consumer)
    assign(source, [TP])
    assert source._take_size() == source._consume_batch
    source._ingest(messages(TP, range(9_990)), 0.0)
    assert source._take_size() == 10
    source._ingest(messages(TP, range(9_990, 10_000)), 0.0)
    assert source._take_size() == 1


def test_a_held_source_only_polls_for_group_events_now_and_then() -> None:
    consumer = FakeConsumer()
    source, _ = make_source(consumer)
    clock = source._clock
    assert isinstance(clock, FakeClock)
    source.paused = True

    async def fetch_twice() -> None:
        source._loop = asyncio.get_running_loop()
        await source._fetch(consumer, 1)  # type: ignore[arg-type]
        await source._fetch(consumer, 1)  # type: ignore[arg-type]
        clock.advance(HOLD_EVENTS_S)
        await source._fetch(consumer, 1)  # type: ignore[arg-type]

    asyncio.run(fetch_twice())
    assert consumer.consumed == [(1, 0), (1, 0)], "one-record polls, one per HOLD_EVENTS_S"


def test_a_partition_paused_before_a_rebalance_is_fetched_again_after_it() -> None:
    """Paused under a backlog, revoked, the resume finding nothing assigned, then assigned
    again: it must be fetched, not left paused for good."""
    tps = [("in", p) for p in range(3)]
    consumer = FakeConsumer()
    source, _ = make_source(consumer)
    assign(source, tps)
    hold_and_pause(source, consumer, tps[0])
    assert source.paused
    assert consumer.paused == set(tps)

    revoke(source, tps)
    source._backpressure(consumer)  # type: ignore[arg-type]
    assert not source.paused
    assign(source, tps[:2])
    assert not consumer.paused & set(tps[:2]), f"left paused: {consumer.paused}"


def test_partitions_assigned_while_paused_start_paused() -> None:
    consumer = FakeConsumer()
    source, _ = make_source(consumer)
    assign(source, [TP])
    hold_and_pause(source, consumer, TP)
    other = ("in", 7)
    assign(source, [other])
    assert other in consumer.paused


def test_partitions_assigned_while_held_are_fetched() -> None:
    """Only held, librdkafka pauses nothing: a new partition's prefetch fills and waits."""
    consumer = FakeConsumer()
    source, _ = make_source(consumer)
    assign(source, [TP])
    take(source, consumer, TP, range(10_000))
    assign(source, [OTHER])
    assert consumer.paused == set()


def test_new_credit_closes_a_lingering_batch_without_waiting_for_the_next_fetch() -> None:
    """The service calls `dispatch_now` on every ack and credit message: a credit freed
    while the source waits in `consume` must not wait for that call to return."""
    consumer = FakeConsumer()
    source, emitted = make_source(consumer)
    assign(source, [TP])
    clock = source._clock
    assert isinstance(clock, FakeClock)
    dispatcher = source._dispatcher
    dispatcher.connect("s1", "w1", 1, RecordingTransport())
    source._ingest(messages(TP, range(3)), clock.now)
    clock.advance(0.01)  # past the linger
    source.dispatch_now()
    assert emitted == [], "no credit yet: the batch keeps growing"
    dispatcher.credit("s1", 1)
    source.dispatch_now()
    assert [task.offsets for task in emitted] == [[0, 1, 2]]


def _with_idle_credit() -> tuple[Source, list[Task], FakeClock]:
    source, emitted = make_source(FakeConsumer())
    assign(source, [TP])
    source._dispatcher.connect("s1", "w1", 4, RecordingTransport())
    source._dispatcher.credit("s1", 4)
    clock = source._clock
    assert isinstance(clock, FakeClock)
    return source, emitted, clock


def test_a_short_consume_closes_batches_for_idle_credit_without_lingering() -> None:
    """A consume that came back short means the input has caught up: waiting out the
    linger would add latency and no records."""
    source, emitted, clock = _with_idle_credit()
    source._take(messages(TP, range(3)), clock.now, asked=5)
    assert [task.offsets for task in emitted] == [[0, 1, 2]]


def test_a_full_consume_lets_batches_linger_to_grow() -> None:
    source, emitted, clock = _with_idle_credit()
    source._take(messages(TP, range(3)), clock.now, asked=3)
    assert emitted == [], "more records wait in Kafka: the batch lingers"
    clock.advance(0.01)  # past the linger
    source.dispatch_now()
    assert [task.offsets for task in emitted] == [[0, 1, 2]]


def test_a_paused_source_has_not_caught_up() -> None:
    """Under backpressure consume comes back empty while a backlog waits in Kafka."""
    source, emitted, clock = _with_idle_credit()
    source.paused = True
    source._take(messages(TP, range(3)), clock.now, asked=5)
    assert emitted == []
    source.paused = False
    source._take([], clock.now, asked=5)
    assert [task.offsets for task in emitted] == [[0, 1, 2]]
