from streamplane.platform.records import Records
from streamplane.platform.worker.processor import Emit, Processor, WorkItem
from streamplane.platform.worker.routing import RoutingProcessor


class Recorder(Processor):
    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.seen: list[list[int]] = []

    def process(self, item: WorkItem, emit: Emit) -> None:
        self.seen.append(item.records.offsets)
        for i, value in enumerate(item.records.values):
            emit(self.topic, item.records.keys[i], value, [("tenant", item.tenant_at(i).encode())])


def _item(values: list[bytes]) -> WorkItem:
    n = len(values)
    records = Records(
        "in",
        0,
        list(range(10, 10 + n)),
        [0] * n,
        [b"k"] * n,
        values,
        {1: [("h", b"v")]},
        [f"t{i % 2}" for i in range(n)],
    )
    return WorkItem("task-1.1", "t0", 1, records)


def _route(values: list[bytes]) -> tuple[Recorder, Recorder, list[tuple[str, bytes, list]]]:
    default, special = Recorder("features"), Recorder("rl")
    written: list[tuple[str, bytes, list]] = []
    router = RoutingProcessor(default, special, lambda v: v.startswith(b"R"))
    router.process(_item(values), lambda t, k, v, h: written.append((t, v, h)))
    return default, special, written


def test_mixed_task_is_split_with_aligned_columns() -> None:
    default, special, written = _route([b"e0", b"R1", b"e2", b"R3"])
    assert default.seen == [[10, 12]]
    assert special.seen == [[11, 13]]
    assert sorted((t, v) for t, v, _ in written) == [
        ("features", b"e0"),
        ("features", b"e2"),
        ("rl", b"R1"),
        ("rl", b"R3"),
    ]
    # per-record tenants follow their records through the split
    tenants = {v: h[0][1] for _, v, h in written}
    assert tenants == {b"e0": b"t0", b"R1": b"t1", b"e2": b"t0", b"R3": b"t1"}


def test_whole_task_goes_to_one_side_without_copying() -> None:
    default, special, _ = _route([b"e0", b"e1"])
    assert (default.seen, special.seen) == ([[10, 11]], [])
    default, special, _ = _route([b"R0", b"R1"])
    assert (default.seen, special.seen) == ([], [[10, 11]])


def test_select_keeps_sparse_headers_on_their_records() -> None:
    records = _item([b"a", b"b", b"c"]).records
    picked = records.select([1, 2])
    assert picked.headers == {0: [("h", b"v")]}
    assert picked.values == [b"b", b"c"]
    assert picked.tenants == ["t1", "t0"]
