"""The shard writer: atomic shards, the manifest as truth, crash windows, retention, lock."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from streamplane.config import RLSettings
from streamplane.rl.buffer.manifest import (
    SHARDS_DIR,
    load_transitions,
    read_manifest,
)
from streamplane.rl.buffer.shards import BufferLock, ShardWriter
from streamplane.rl.exceptions import BufferCorrupt, BufferLocked


def rows(start: int, count: int, skill: str = "s", partition: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "env": "CartPole-v1", "skill": skill, "policy_version": 0,
            "episode_id": f"e{o // 10}", "step": o % 10, "obs": [0.1, 0.2, 0.3, 0.4],
            "action": o % 2, "reward": 1.0, "next_obs": [0.2, 0.3, 0.4, 0.5],
            "terminated": o % 10 == 9, "truncated": False,
            "src_partition": partition, "src_offset": o, "timestamp_ms": 0,
        }
        for o in range(start, start + count)
    ]  # fmt: skip


def offsets_in_complete_shards(buffer: Path) -> list[tuple[int, int]]:
    table = load_transitions(buffer)
    return sorted(
        zip(
            table.column("src_partition").to_pylist(),
            table.column("src_offset").to_pylist(),
            strict=True,
        )
    )


def test_shards_are_listed_with_ranges_and_counts(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path, "topic", max_bytes=1 << 30, clock=lambda: 1.5)
    writer.open()
    writer.write_shard(rows(0, 10, "a") + rows(0, 5, "b", partition=1), {0: 10, 1: 5})
    manifest = writer.write_shard(rows(10, 10, "a"), {0: 20})
    assert manifest.next_offsets == {0: 20, 1: 5}
    assert manifest.transitions_by_skill() == {"a": 20, "b": 5}
    assert manifest.shards_by_skill() == {"a": 2, "b": 1}
    assert manifest.shards[0].offsets == {0: (0, 9), 1: (0, 4)}
    assert manifest.shards[0].created_ms == 1500
    assert manifest.appended_total == 25
    assert read_manifest(tmp_path).to_json() == manifest.to_json()
    assert len(load_transitions(tmp_path, ["b"])) == 5
    assert offsets_in_complete_shards(tmp_path) == sorted(
        [(0, o) for o in range(20)] + [(1, o) for o in range(5)]
    )


def test_only_offsets_move_when_no_rows(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path, "topic", 1 << 30)
    writer.open()
    manifest = writer.write_shard([], {0: 7})
    assert manifest.next_offsets == {0: 7}
    assert manifest.shards == []


def test_crash_before_manifest_leaves_an_orphan_that_open_removes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = ShardWriter(tmp_path, "topic", 1 << 30)
    writer.open()
    writer.write_shard(rows(0, 10), {0: 10})

    def crash(*_args: object) -> None:
        raise OSError("simulated crash before the manifest")

    monkeypatch.setattr("streamplane.rl.buffer.shards.write_manifest", crash)
    with pytest.raises(OSError, match="simulated"):
        writer.write_shard(rows(10, 10), {0: 20})
    monkeypatch.undo()
    # The renamed shard file exists but is not complete: no manifest lists it.
    assert len(os.listdir(tmp_path / SHARDS_DIR)) == 2
    (tmp_path / SHARDS_DIR / ".tmp-leftover.parquet").write_bytes(b"partial")
    restarted = ShardWriter(tmp_path, "topic", 1 << 30)
    manifest = restarted.open()
    assert manifest.next_offsets == {0: 10}
    assert len(os.listdir(tmp_path / SHARDS_DIR)) == 1
    # The records are consumed again from offset 10 and written once.
    restarted.write_shard(rows(10, 10), {0: 20})
    assert offsets_in_complete_shards(tmp_path) == [(0, o) for o in range(20)]


def test_crash_while_writing_the_shard_file_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = ShardWriter(tmp_path, "topic", 1 << 30)
    writer.open()

    def crash(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("streamplane.rl.buffer.shards.pq.write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        writer.write_shard(rows(0, 10), {0: 10})
    assert os.listdir(tmp_path / SHARDS_DIR) == []
    assert read_manifest(tmp_path).next_offsets == {}


def test_retention_drops_the_oldest_shards(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path, "topic", 1 << 30)
    writer.open()
    one = writer.write_shard(rows(0, 100), {0: 100}).shards[0].bytes
    writer = ShardWriter(tmp_path, "topic", max_bytes=int(one * 2.5))
    writer.open()
    for start in range(100, 600, 100):
        manifest = writer.write_shard(rows(start, 100), {0: start + 100})
    assert len(manifest.shards) == 2
    assert manifest.bytes <= one * 2.5
    assert manifest.evicted_total == 400
    assert manifest.appended_total == 600
    assert sorted(os.listdir(tmp_path / SHARDS_DIR)) == [s.name for s in manifest.shards]
    assert offsets_in_complete_shards(tmp_path) == [(0, o) for o in range(400, 600)]


def test_open_refuses_another_topic_and_missing_shards(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path, "topic", 1 << 30)
    writer.open()
    manifest = writer.write_shard(rows(0, 5), {0: 5})
    with pytest.raises(BufferCorrupt, match="other"):
        ShardWriter(tmp_path, "other", 1 << 30).open()
    (tmp_path / SHARDS_DIR / manifest.shards[0].name).unlink()
    with pytest.raises(BufferCorrupt, match="missing"):
        ShardWriter(tmp_path, "topic", 1 << 30).open()


def test_corrupt_manifest_is_reported(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(BufferCorrupt, match="manifest"):
        read_manifest(tmp_path)


def test_one_writer_per_directory(tmp_path: Path) -> None:
    with BufferLock(tmp_path), pytest.raises(BufferLocked):
        BufferLock(tmp_path).acquire()
    with BufferLock(tmp_path):
        pass


def test_committed_offsets_are_retried_while_the_coordinator_loads(
    training_settings: RLSettings,
) -> None:
    import threading

    from streamplane.config import Settings
    from streamplane.platform.kafka.exceptions import KafkaUnavailable
    from streamplane.rl.buffer.service import BufferService

    class Consumer:
        """GroupConsumer.committed as a coordinator that is still loading answers it."""

        def __init__(self, failures: int) -> None:
            self.failures = failures

        def committed(
            self, request: list[tuple[str, int]], timeout: float
        ) -> dict[tuple[str, int], int]:
            if self.failures:
                self.failures -= 1
                raise KafkaUnavailable("not coordinator", code=16)
            return {(topic, p): 5 for topic, p in request if p}  # partition 0 never committed

    class NoWait(threading.Event):
        """A stop event whose backoff waits return at once (never set)."""

        def wait(self, timeout: float | None = None) -> bool:
            return False

    service = BufferService(Settings(), training_settings)
    assert service._committed(Consumer(0), [], NoWait()) == {}
    assert service._committed(Consumer(2), [0, 1], NoWait()) == {1: 5}
    with pytest.raises(KafkaUnavailable):
        service._committed(Consumer(100), [0], NoWait())
    stopped = threading.Event()
    stopped.set()
    with pytest.raises(KafkaUnavailable):
        service._committed(Consumer(100), [0], stopped)
