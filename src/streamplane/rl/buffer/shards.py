"""The replay buffer on disk: Parquet shards, written atomically, listed by the manifest.

:class:`ShardWriter` owns a buffer directory's files and nothing else (the Kafka side is
``buffer_service.py``). Writing one shard goes:

1. the rows go to ``shards/.tmp-<random>.parquet``, which is fsynced;
2. the file is renamed to ``shards/shard-<seq>.parquet`` and the folder fsynced;
3. the manifest is replaced with one that lists the shard and moves each partition's
   ``next_offsets`` past the shard's records (and drops the oldest shards while the
   total exceeds the size bound);
4. evicted shard files are deleted;
5. only then does the caller commit the offsets to Kafka.

A crash before step 3 leaves a file no manifest lists: :meth:`ShardWriter.open` deletes
it, and those records are read again from the manifest's offsets, so nothing is lost and
nothing is in two complete shards. A crash between 3 and 5 leaves Kafka's committed
offsets behind the manifest's: the manifest wins, and the service commits its offsets
at start. :class:`BufferLock` keeps a second writer out of the same directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from streamplane.rl.buffer.manifest import (
    SHARDS_DIR,
    Manifest,
    ShardEntry,
    fsync_dir,
    read_manifest,
    write_manifest,
)
from streamplane.rl.buffer.parquet_schema import TRANSITION_SCHEMA
from streamplane.rl.exceptions import BufferCorrupt, BufferLocked

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"
_SHARD_PREFIX = "shard-"
_TMP_PREFIX = ".tmp-"


class BufferLock:
    """An exclusive ``flock`` on ``<dir>/.lock``: one writer per buffer directory.

    The kernel drops the lock when the process dies, SIGKILL included, so a crashed
    writer never blocks its successor.
    """

    def __init__(self, buffer_dir: Path) -> None:
        self._path = Path(buffer_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock without waiting.

        Raises:
            BufferLocked: another process holds it.
        """
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise BufferLocked(f"another buffer writer holds {self._path}") from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (safe when not held)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> BufferLock:
        """Acquire (see :meth:`acquire`)."""
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Release."""
        self.release()


class ShardWriter:
    """Appends shards to one buffer directory; the caller must hold its :class:`BufferLock`.

    Args:
        buffer_dir: ``RL_BUFFER_DIR``.
        topic: The results topic the rows come from (recorded in the manifest).
        max_bytes: Retention bound: the oldest shards go while the total exceeds it (the
            newest shard always stays).
        clock: Wall clock in seconds, for shard timestamps.
    """

    def __init__(
        self,
        buffer_dir: Path,
        topic: str,
        max_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.buffer_dir = Path(buffer_dir)
        self._topic = topic
        self._max_bytes = max_bytes
        self._clock = clock
        self._manifest: Manifest | None = None

    @property
    def manifest(self) -> Manifest:
        """The current manifest (after :meth:`open`)."""
        if self._manifest is None:
            raise BufferCorrupt("the shard writer has not been opened")
        return self._manifest

    def open(self) -> Manifest:
        """Read the manifest and delete shard files it does not list (crash leftovers).

        Raises:
            BufferCorrupt: the manifest is unreadable, belongs to another topic, or lists
                a shard that is missing.
        """
        shards = self.buffer_dir / SHARDS_DIR
        shards.mkdir(parents=True, exist_ok=True)
        manifest = read_manifest(self.buffer_dir)
        if manifest.topic is not None and manifest.topic != self._topic:
            raise BufferCorrupt(
                f"{self.buffer_dir} holds transitions of topic {manifest.topic!r}, "
                f"not {self._topic!r}"
            )
        manifest.topic = self._topic
        listed = {s.name for s in manifest.shards}
        for name in os.listdir(shards):
            if name not in listed:
                logger.warning(
                    "removing a shard no manifest lists (left by a crash)",
                    extra={"shard": name, "buffer": str(self.buffer_dir)},
                )
                (shards / name).unlink(missing_ok=True)
        missing = [n for n in listed if not (shards / n).is_file()]
        if missing:
            raise BufferCorrupt(f"{self.buffer_dir}: listed shards are missing: {missing}")
        fsync_dir(shards)
        self._manifest = manifest
        return manifest

    def write_shard(self, rows: Sequence[dict[str, Any]], positions: dict[int, int]) -> Manifest:
        """Make ``rows`` one durable shard and move the offsets to ``positions``.

        ``positions`` maps each partition to the next offset to consume; it may run past
        the rows' offsets (records that were skipped as invalid). With no rows only the
        offsets move. Returns the new manifest.
        """
        manifest = self.manifest
        new = Manifest(
            topic=self._topic,
            next_offsets={**manifest.next_offsets, **positions},
            shards=list(manifest.shards),
            next_shard=manifest.next_shard,
            appended_total=manifest.appended_total,
            appended_by_skill=dict(manifest.appended_by_skill),
            evicted_total=manifest.evicted_total,
        )
        evicted: list[ShardEntry] = []
        if rows:
            entry = self._write_file(rows, manifest.next_shard)
            new.shards.append(entry)
            new.next_shard += 1
            new.appended_total += entry.rows
            for skill, n in entry.skills.items():
                new.appended_by_skill[skill] = new.appended_by_skill.get(skill, 0) + n
            while len(new.shards) > 1 and new.bytes > self._max_bytes:
                gone = new.shards.pop(0)
                new.evicted_total += gone.rows
                evicted.append(gone)
        write_manifest(self.buffer_dir, new)
        self._manifest = new
        for gone in evicted:
            (self.buffer_dir / SHARDS_DIR / gone.name).unlink(missing_ok=True)
        return new

    def _write_file(self, rows: Sequence[dict[str, Any]], seq: int) -> ShardEntry:
        table = pa.Table.from_pylist(list(rows), schema=TRANSITION_SCHEMA)
        shards = self.buffer_dir / SHARDS_DIR
        name = f"{_SHARD_PREFIX}{seq:010d}.parquet"
        tmp = shards / f"{_TMP_PREFIX}{uuid.uuid4().hex}.parquet"
        try:
            with tmp.open("wb") as out:
                pq.write_table(table, out, compression="zstd")
                out.flush()
                os.fsync(out.fileno())
            os.rename(tmp, shards / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(shards)
        offsets: dict[int, tuple[int, int]] = {}
        skills: dict[str, int] = {}
        for row in rows:
            p, o = int(row["src_partition"]), int(row["src_offset"])
            first, last = offsets.get(p, (o, o))
            offsets[p] = (min(first, o), max(last, o))
            skills[row["skill"]] = skills.get(row["skill"], 0) + 1
        return ShardEntry(
            name=name,
            rows=len(rows),
            bytes=(shards / name).stat().st_size,
            offsets=offsets,
            skills=skills,
            created_ms=int(self._clock() * 1000),
        )
