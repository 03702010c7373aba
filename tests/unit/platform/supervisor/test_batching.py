"""Batching of consumed records into tasks, and the tenant of a record."""

from __future__ import annotations

import json
import zlib
from collections.abc import Hashable
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamplane.config import Ordering
from streamplane.platform.records import unpack
from streamplane.platform.supervisor.batching import (
    BUSY_RECORDS,
    FEW_TENANTS,
    KEY_LANES,
    MANY_TENANTS,
    MAX_OPEN_BATCHES,
    Batcher,
)
from streamplane.platform.supervisor.offsets import OffsetTracker
from streamplane.platform.supervisor.tasks import Task, TopicPartition
from streamplane.platform.tenants import MAX_TENANT_LEN, Headers, tenant_of

from .factories import FAST

# -- tenant_of ------------------------------------------------------------------------


def test_tenant_header_wins_over_the_payload() -> None:
    assert tenant_of(b'{"tenant": "payload"}', [("tenant", b"header")]) == "header"


def test_payload_tenant_is_used_without_a_header() -> None:
    assert tenant_of(b'{"id": 1, "tenant" : "acme", "x": 2}', None) == "acme"
    assert tenant_of(b'{"tenant":\n"acme"}', [("other", b"x")]) == "acme"


@pytest.mark.parametrize(
    "headers",
    [[("tenant", b"")], [("tenant", None)], [("Tenant", b"wrong-case")], [], None],
)
def test_an_empty_or_absent_tenant_header_falls_back_to_the_payload(headers: Headers) -> None:
    assert tenant_of(b'{"tenant": "acme"}', headers) == "acme"


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"not json at all",
        b'{"tenant": ""}',
        b'{"tenant": 7}',
        b'{"subtenant": "x"}',
        b'{"note": "\\"tenant\\": \\"spoofed\\""}',
    ],
)
def test_default_tenant_when_neither_names_one(value: bytes | None) -> None:
    assert tenant_of(value, None) == "default"


def test_a_long_header_tenant_is_cut() -> None:
    assert tenant_of(b"", [("tenant", b"x" * 500)]) == "x" * MAX_TENANT_LEN


def test_the_first_tenant_header_counts() -> None:
    assert tenant_of(None, [("tenant", b"one"), ("tenant", b"two")]) == "one"


_names = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, blacklist_characters='"\\'),
    min_size=1,
    max_size=MAX_TENANT_LEN,
)


@FAST
@given(
    header=st.one_of(st.none(), _names),
    payload=st.one_of(st.none(), _names),
    extra=st.dictionaries(st.sampled_from(["id", "ts", "kind"]), st.integers(), max_size=3),
)
def test_tenant_precedence(header: str | None, payload: str | None, extra: dict[str, int]) -> None:
    body: dict[str, object] = dict(extra)
    if payload is not None:
        body["tenant"] = payload
    value = json.dumps(body).encode()
    headers: list[tuple[str, bytes | None]] = [("trace", b"1")]
    if header is not None:
        headers.append(("tenant", header.encode()))
    expected = header if header is not None else payload if payload is not None else "default"
    assert tenant_of(value, headers) == expected


# -- batching -------------------------------------------------------------------------


@dataclass
class _Rec:
    tp: TopicPartition
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers
    added_at: float


class _Harness:
    def __init__(
        self,
        ordering: Ordering,
        max_records: int,
        max_bytes: int,
        linger_s: float,
        max_age_s: float | None = None,
        max_open: int = MAX_OPEN_BATCHES,
        *,
        waits: bool | None = None,
    ) -> None:
        self.emitted: list[Task] = []
        # None: a batcher told nothing of waiting tasks (per-tenant batches always).
        self.waits = waits
        self.batcher = Batcher(
            ordering=ordering,
            max_records=max_records,
            max_bytes=max_bytes,
            linger_s=linger_s,
            id_prefix="b",
            emit=self.emitted.append,
            max_age_s=max_age_s,
            max_open=max_open,
            contended=None if waits is None else lambda: bool(self.waits),
        )
        self.trackers: dict[TopicPartition, OffsetTracker] = {}
        self.next: dict[TopicPartition, int] = {}
        self.records: dict[tuple[TopicPartition, int], _Rec] = {}

    def add(
        self,
        tp: TopicPartition,
        key: bytes | None,
        value: bytes,
        headers: Headers,
        now: float,
    ) -> _Rec:
        tracker = self.trackers.setdefault(tp, OffsetTracker())
        offset = self.next.get(tp, 0)
        self.next[tp] = offset + 1
        tracker.register([offset])
        rec = _Rec(tp, offset, key, value, headers, now)
        self.records[(tp, offset)] = rec
        self.batcher.add(tp, tracker, offset, key, value, headers, 1234, now)
        return rec


def _expected_lane(ordering: Ordering, tp: TopicPartition, key: bytes | None) -> Hashable:
    if ordering == "unordered":
        return None
    if ordering == "partition" or key is None:
        return tp
    return (tp, zlib.crc32(key) % KEY_LANES)


_records = st.lists(
    st.tuples(
        st.integers(0, 2),  # partition
        st.one_of(st.none(), st.sampled_from([b"k1", b"k2", b"k3", b"", b"k4"])),  # key
        st.integers(0, 40),  # value size
        st.sampled_from(["header", "payload", "none"]),  # where the tenant comes from
        st.sampled_from(["a", "b"]),  # tenant
        st.sampled_from([0.0, 0.0, 0.001, 0.004, 0.02]),  # time since the last record
        st.booleans(),  # flush_due after it
    ),
    min_size=1,
    max_size=80,
)


@FAST
@given(
    records=_records,
    ordering=st.sampled_from(["unordered", "key", "partition"]),
    max_records=st.integers(1, 8),
    max_bytes=st.integers(1, 120),
    linger_s=st.sampled_from([0.0, 0.005, 0.01]),
    waits=st.none() | st.lists(st.booleans(), min_size=1, max_size=10),
)
def test_tasks_respect_count_bytes_linger_partitions_tenants_and_lanes(
    records: list[tuple[int, bytes | None, int, str, str, float, bool]],
    ordering: Ordering,
    max_records: int,
    max_bytes: int,
    linger_s: float,
    waits: list[bool] | None,
) -> None:
    h = _Harness(ordering, max_records, max_bytes, linger_s, waits=None if waits is None else True)
    now = 0.0
    for i, (partition, key, size, source, tenant, dt, flush) in enumerate(records):
        if waits is not None:
            h.waits = waits[i % len(waits)]  # tasks wait for workers, or none does
        now += dt
        tp = ("in", partition)
        headers: list[tuple[str, bytes | None]] = [("trace", b"t")]
        value = b"x" * size
        if source == "header":
            headers.append(("tenant", tenant.encode()))
        elif source == "payload":
            value = json.dumps({"tenant": tenant, "pad": "x" * size}).encode()
        h.add(tp, key, value, headers, now)
        if flush:
            before = len(h.emitted)
            h.batcher.flush_due(now)
            # Linger: what a flush closes had waited long enough, what stays open had not.
            deadline = now - linger_s
            for task in h.emitted[before:]:
                assert h.records[(task.tp, task.offsets[0])].added_at <= deadline
            emitted = {(t.tp, o) for t in h.emitted for o in t.offsets}
            for key_, rec in h.records.items():
                if key_ not in emitted:
                    assert rec.added_at > deadline, "a lingering batch was not flushed"
    open_records = h.batcher.open_records
    assert open_records == len(h.records) - sum(t.size for t in h.emitted)
    h.batcher.flush_due(now, force=True)
    assert h.batcher.open_records == 0

    seen: list[tuple[TopicPartition, int]] = []
    by_slot: dict[tuple[str, TopicPartition, Hashable], list[int]] = {}
    key_lanes: dict[tuple[TopicPartition, bytes], set[Hashable]] = {}
    for task in h.emitted:
        wire = task.to_message().task
        got = unpack(wire.records)
        assert 1 <= task.size <= max_records
        assert task.nbytes == sum(len(v) for v in got.values)
        assert task.nbytes <= max_bytes or task.size == 1, "bytes bound"
        assert wire.task_id == task.wire_id
        if task.tenant != MANY_TENANTS:
            assert wire.tenant == task.tenant
        assert task.offsets == got.offsets
        assert task.tracker is h.trackers[task.tp]
        assert (got.topic, got.partition) == task.tp, "a task never spans partitions"
        for i, offset in enumerate(got.offsets):
            rec = h.records[(task.tp, offset)]
            # What the worker reads: the record's own tenant, never the shared "*".
            tenant = got.tenants[i] if got.tenants else wire.tenant
            assert tenant_of(rec.value, rec.headers) == tenant
            if ordering == "unordered" and task.tenant != MANY_TENANTS:
                assert not got.tenants, "unordered: one tenant per task, or a shared one"
                assert tenant == task.tenant
            if ordering == "unordered" and (waits is None or all(waits)):
                assert task.tenant != MANY_TENANTS, "two tenants share only while none waits"
            assert got.values[i] == rec.value
            assert got.keys[i] == rec.key
            expected_headers = [(k, v or b"") for k, v in (rec.headers or [])]
            assert got.headers_of(i) == expected_headers
            assert task.lane == _expected_lane(ordering, task.tp, rec.key)
            if rec.key is not None:
                key_lanes.setdefault((task.tp, rec.key), set()).add(task.lane)
            seen.append((task.tp, offset))
        slot_tenant = task.tenant if ordering == "unordered" else ""
        by_slot.setdefault((slot_tenant, task.tp, task.lane), []).extend(task.offsets)

    assert sorted(seen) == sorted(h.records), "every record is in exactly one task"
    for offsets in by_slot.values():
        assert offsets == sorted(offsets), "tasks of one slot come out in input order"
    if ordering != "unordered":
        assert all(len(lanes) == 1 for lanes in key_lanes.values()), "equal keys share a lane"


def test_count_bound_closes_a_task_at_once() -> None:
    h = _Harness("unordered", max_records=3, max_bytes=10_000, linger_s=60)
    for _ in range(7):
        h.add(("in", 0), None, b"v", None, 0.0)
    assert [t.offsets for t in h.emitted] == [[0, 1, 2], [3, 4, 5]]
    assert h.batcher.open_records == 1


def test_bytes_bound_closes_a_task_before_it_overflows() -> None:
    h = _Harness("unordered", max_records=100, max_bytes=10, linger_s=60)
    for size in (4, 4, 4, 10, 30, 1):
        h.add(("in", 0), None, b"x" * size, None, 0.0)
    assert [t.offsets for t in h.emitted] == [[0, 1], [2], [3], [4]]
    assert [t.nbytes for t in h.emitted] == [8, 4, 10, 30]
    assert h.batcher.open_records == 1


def test_linger_closes_a_batch_once_it_is_old_enough() -> None:
    h = _Harness("unordered", max_records=100, max_bytes=10_000, linger_s=0.005)
    h.add(("in", 0), None, b"a", None, 0.0)
    h.add(("in", 0), None, b"b", None, 0.004)
    h.batcher.flush_due(0.004)
    assert h.emitted == []
    h.batcher.flush_due(0.005)
    assert [t.offsets for t in h.emitted] == [[0, 1]]


def test_records_of_different_partitions_and_tenants_never_share_a_task() -> None:
    h = _Harness("unordered", max_records=100, max_bytes=10_000, linger_s=60)
    h.add(("in", 0), None, b"v", [("tenant", b"a")], 0.0)
    h.add(("in", 1), None, b"v", [("tenant", b"a")], 0.0)
    h.add(("in", 0), None, b"v", [("tenant", b"b")], 0.0)
    h.add(("in", 0), None, b"v", [("tenant", b"a")], 0.0)
    h.batcher.flush_due(0.0, force=True)
    assert sorted((t.tenant, t.tp, tuple(t.offsets)) for t in h.emitted) == [
        ("a", ("in", 0), (0, 2)),
        ("a", ("in", 1), (0,)),
        ("b", ("in", 0), (1,)),
    ]


def test_key_mode_puts_equal_keys_in_one_lane_and_keyless_records_in_the_partition_lane() -> None:
    h = _Harness("key", max_records=1, max_bytes=10_000, linger_s=60)
    tp = ("in", 3)
    for key in (b"user-1", b"user-2", b"user-1", None):
        h.add(tp, key, b"v", None, 0.0)
    lanes = [t.lane for t in h.emitted]
    assert lanes[0] == lanes[2] == (tp, zlib.crc32(b"user-1") % KEY_LANES)
    assert lanes[3] == tp


def test_a_batch_of_an_older_assignment_is_not_mixed_with_the_new_one() -> None:
    h = _Harness("unordered", max_records=100, max_bytes=10_000, linger_s=60)
    tp = ("in", 0)
    h.add(tp, None, b"old", None, 0.0)
    h.trackers[tp] = OffsetTracker(start=0)  # revoked and assigned again
    h.next[tp] = 0
    h.add(tp, None, b"new", None, 0.0)
    h.batcher.flush_due(0.0, force=True)
    assert len(h.emitted) == 1
    assert h.emitted[0].tracker is h.trackers[tp]
    assert h.emitted[0].records.values == [b"new"]


def test_drop_partitions_forgets_their_open_batches() -> None:
    h = _Harness("unordered", max_records=100, max_bytes=10_000, linger_s=60)
    for partition in (0, 0, 1, 2):
        h.add(("in", partition), None, b"v", None, 0.0)
    assert h.batcher.drop_partitions({("in", 0), ("in", 2)}) == 3
    assert h.batcher.open_records == 1
    h.batcher.flush_due(0.0, force=True)
    assert [t.tp for t in h.emitted] == [("in", 1)]


def test_flush_due_closes_only_as_many_lingering_batches_as_asked_oldest_first() -> None:
    h = _Harness("unordered", max_records=100, max_bytes=10_000, linger_s=0.005)
    for partition, at in ((0, 0.0), (1, 0.001), (2, 0.002)):
        h.add(("in", partition), None, b"v", None, at)
    assert h.batcher.flush_due(0.0061, limit=1) == 1
    assert [t.tp for t in h.emitted] == [("in", 0)]
    assert h.batcher.flush_due(0.0061, limit=5) == 1, "the third has not lingered long enough"
    assert h.batcher.flush_due(1.0) == 1
    assert [t.tp[1] for t in h.emitted] == [0, 1, 2]


def test_a_batch_past_its_max_age_closes_without_idle_credit() -> None:
    """Issue 16.1: a rare tenant's batch must not wait out a backlog (no credit, ever)."""
    h = _Harness("unordered", max_records=100, max_bytes=10_000, linger_s=0.005, max_age_s=0.25)
    h.add(("in", 0), None, b"v", [("tenant", b"rare")], 0.0)
    h.add(("in", 0), None, b"v", [("tenant", b"busy")], 0.2)
    assert h.batcher.flush_stale(0.249) == 0
    assert h.batcher.flush_stale(0.25) == 1
    assert [(t.tenant, t.offsets) for t in h.emitted] == [("rare", [0])]
    assert h.batcher.flush_stale(0.45) == 1
    assert h.batcher.open_records == 0


def test_without_a_max_age_flush_stale_closes_nothing() -> None:
    h = _Harness("unordered", max_records=100, max_bytes=10_000, linger_s=0.005)
    h.add(("in", 0), None, b"v", None, 0.0)
    assert h.batcher.flush_stale(1e9) == 0


def test_many_tenants_share_a_batch_per_partition_past_the_open_cap() -> None:
    """Issue 16.3: 200k tenants made tasks of one record and an ever-growing table."""
    h = _Harness("unordered", max_records=50, max_bytes=1_000_000, linger_s=60, max_open=8)
    for i in range(2_000):
        h.add(("in", i % 2), None, b"v", [("tenant", f"t{i}".encode())], 0.0)
    assert len(h.batcher._open) <= 8 + 2  # the cap, plus one shared batch per partition
    h.batcher.flush_due(0.0, force=True)
    sizes = [t.size for t in h.emitted]
    assert sum(sizes) == 2_000
    assert sum(sizes) / len(sizes) > 40, "the long tail must travel in full tasks"
    shared = [t for t in h.emitted if t.tenant == MANY_TENANTS]
    assert shared
    for task in shared:
        # Each record keeps its own tenant, for sp-tenant and per-tenant metrics.
        assert len(task.records.tenants) == task.size
        assert all(name.startswith("t") for name in task.records.tenants)


def test_a_long_tail_of_tenants_shares_full_tasks_while_batches_keep_closing() -> None:
    """Issue 16.3: under the cap, every slot a closed batch freed reopened for the next new
    tenant, so 200k tenants still travelled as tasks of one record."""
    h = _Harness("unordered", max_records=100, max_bytes=1_000_000, linger_s=0.005)
    now = 0.0
    for i in range(20_000):
        if i % 500 == 0:
            now += 0.01
            h.batcher.flush_due(now, limit=4)  # workers free a few credits now and then
        h.add(("in", i % 2), None, b"v", [("tenant", f"t{i}".encode())], now)
    h.batcher.flush_due(now, force=True)
    sizes = [t.size for t in h.emitted]
    assert sum(sizes) == 20_000
    singles = sum(1 for t in h.emitted if t.size == 1)
    assert singles <= FEW_TENANTS, f"{singles} tasks of one record"
    assert sum(sizes) / len(sizes) > 50


def test_a_busy_tenant_keeps_its_own_batches_among_many() -> None:
    h = _Harness("unordered", max_records=100, max_bytes=1_000_000, linger_s=60)
    for i in range(10_000):
        tenant = "whale" if i % 2 else f"t{i}"
        h.add(("in", 0), None, b"v", [("tenant", tenant.encode())], 0.0)
    h.batcher.flush_due(0.0, force=True)
    whale = [t for t in h.emitted if t.tenant == "whale"]
    assert sum(t.size for t in whale) >= 5_000 - BUSY_RECORDS
    assert all(t.size == 100 for t in whale[:-1])


def test_a_few_tenants_always_get_batches_of_their_own() -> None:
    h = _Harness("unordered", max_records=100, max_bytes=1_000_000, linger_s=60)
    for i in range(3 * FEW_TENANTS):
        h.add(("in", 0), None, b"v", [("tenant", f"t{i % FEW_TENANTS}".encode())], 0.0)
    h.batcher.flush_due(0.0, force=True)
    assert {t.tenant for t in h.emitted} == {f"t{i}" for i in range(FEW_TENANTS)}


def test_while_no_task_waits_the_tenants_of_a_partition_share_one_batch() -> None:
    """Fewer open batches close sooner at low load: 3 tenants x 2 partitions, 2 tasks."""
    h = _Harness("unordered", max_records=100, max_bytes=1_000_000, linger_s=60, waits=False)
    for i in range(60):
        h.add(("in", i % 2), None, b"v", [("tenant", f"t{i % 3}".encode())], 0.0)
    h.batcher.flush_due(0.0, force=True)
    assert [(t.tp, t.tenant, t.size) for t in h.emitted] == [
        (("in", 0), MANY_TENANTS, 30),
        (("in", 1), MANY_TENANTS, 30),
    ]
    for task in h.emitted:
        got = unpack(task.to_message().task.records)
        # Record i went to partition i % 2 as tenant i % 3; offsets count per partition.
        assert got.tenants == [f"t{(2 * o + task.tp[1]) % 3}" for o in got.offsets]


def test_once_tasks_wait_each_tenant_gets_its_own_batch_again() -> None:
    h = _Harness("unordered", max_records=4, max_bytes=1_000_000, linger_s=60, waits=False)
    for i in range(4):  # one shared batch, closed full
        h.add(("in", 0), None, b"v", [("tenant", f"t{i % 2}".encode())], 0.0)
    h.add(("in", 0), None, b"v", [("tenant", b"t0")], 0.0)  # opens the next shared one
    h.waits = True
    for i in range(8):
        h.add(("in", 0), None, b"v", [("tenant", f"t{i % 2}".encode())], 0.0)
    h.batcher.flush_due(0.0, force=True)
    assert [(t.tenant, t.size) for t in h.emitted] == [
        (MANY_TENANTS, 4),  # closed full before any task waited
        ("t0", 4),
        ("t1", 4),
        (MANY_TENANTS, 1),  # the shared batch still open takes no more; linger closes it
    ]


def test_a_shared_task_of_one_tenant_names_that_tenant_on_the_wire() -> None:
    """The column is left off when it names one tenant; the task's tenant must then be it."""
    h = _Harness("unordered", max_records=100, max_bytes=1_000_000, linger_s=60, waits=False)
    for _ in range(5):
        h.add(("in", 0), None, b"v", [("tenant", b"solo")], 0.0)
    h.batcher.flush_due(0.0, force=True)
    [task] = h.emitted
    assert task.tenant == MANY_TENANTS
    wire = task.to_message().task
    assert wire.tenant == "solo"
    assert not wire.records.tenants
    first, _ = task.split("p")
    assert first.to_message().task.tenant == "solo"
