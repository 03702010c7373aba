"""The replay buffer's manifest: which Parquet shards are complete, and what they hold.

``<RL_BUFFER_DIR>/manifest.json`` is the buffer's single source of truth. A shard exists
for readers only once the manifest lists it; the manifest also records, per partition of
the results topic, the next offset to consume, so that after a crash the buffer resumes
exactly after the last transition it made durable. The manifest is replaced atomically
(temporary file, fsync, rename, fsync of the folder).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from streamplane.rl.buffer.parquet_schema import TRANSITION_SCHEMA
from streamplane.rl.exceptions import BufferCorrupt

MANIFEST_FILE = "manifest.json"
SHARDS_DIR = "shards"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ShardEntry:
    """One complete shard: its file, size, offset ranges and per-skill counts."""

    name: str
    rows: int
    bytes: int
    #: Partition -> [first offset, last offset] of the transitions in this shard.
    offsets: dict[int, tuple[int, int]]
    skills: dict[str, int]
    created_ms: int

    def to_json(self) -> dict[str, Any]:
        """The manifest's representation."""
        return {
            "name": self.name,
            "rows": self.rows,
            "bytes": self.bytes,
            "offsets": {str(p): list(r) for p, r in sorted(self.offsets.items())},
            "skills": dict(sorted(self.skills.items())),
            "created_ms": self.created_ms,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShardEntry:
        """Parse a manifest entry."""
        return cls(
            name=str(data["name"]),
            rows=int(data["rows"]),
            bytes=int(data["bytes"]),
            offsets={int(p): (int(r[0]), int(r[1])) for p, r in data["offsets"].items()},
            skills={str(s): int(n) for s, n in data["skills"].items()},
            created_ms=int(data["created_ms"]),
        )


@dataclass
class Manifest:
    """The buffer's state; ``appended_*`` only ever grow (retention does not lower them)."""

    topic: str | None = None
    next_offsets: dict[int, int] = field(default_factory=dict)
    shards: list[ShardEntry] = field(default_factory=list)
    next_shard: int = 0
    appended_total: int = 0
    appended_by_skill: dict[str, int] = field(default_factory=dict)
    evicted_total: int = 0

    @property
    def transitions(self) -> int:
        """Transitions held now (in listed shards)."""
        return sum(s.rows for s in self.shards)

    @property
    def bytes(self) -> int:
        """Bytes of the listed shards on disk."""
        return sum(s.bytes for s in self.shards)

    def transitions_by_skill(self) -> dict[str, int]:
        """Transitions held now, per skill."""
        counts: dict[str, int] = {}
        for shard in self.shards:
            for skill, n in shard.skills.items():
                counts[skill] = counts.get(skill, 0) + n
        return dict(sorted(counts.items()))

    def shards_by_skill(self) -> dict[str, int]:
        """Number of listed shards holding each skill."""
        counts: dict[str, int] = {}
        for shard in self.shards:
            for skill in shard.skills:
                counts[skill] = counts.get(skill, 0) + 1
        return dict(sorted(counts.items()))

    def to_json(self) -> dict[str, Any]:
        """The file's content."""
        return {
            "format": FORMAT_VERSION,
            "topic": self.topic,
            "next_offsets": {str(p): o for p, o in sorted(self.next_offsets.items())},
            "next_shard": self.next_shard,
            "appended_total": self.appended_total,
            "appended_by_skill": dict(sorted(self.appended_by_skill.items())),
            "evicted_total": self.evicted_total,
            "transitions": self.transitions,
            "transitions_by_skill": self.transitions_by_skill(),
            "bytes": self.bytes,
            "shards": [s.to_json() for s in self.shards],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        """Parse the file's content."""
        return cls(
            topic=data.get("topic"),
            next_offsets={int(p): int(o) for p, o in data["next_offsets"].items()},
            shards=[ShardEntry.from_json(s) for s in data["shards"]],
            next_shard=int(data["next_shard"]),
            appended_total=int(data["appended_total"]),
            appended_by_skill={str(s): int(n) for s, n in data["appended_by_skill"].items()},
            evicted_total=int(data.get("evicted_total", 0)),
        )


def read_manifest(buffer_dir: Path) -> Manifest:
    """The manifest of ``buffer_dir``; an empty one when the buffer is new.

    Raises:
        BufferCorrupt: the file exists but cannot be parsed.
    """
    path = Path(buffer_dir) / MANIFEST_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return Manifest()
    except OSError as exc:
        raise BufferCorrupt(f"cannot read {path}: {exc}") from exc
    try:
        return Manifest.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise BufferCorrupt(f"{path} is not a valid manifest: {exc}") from exc


def write_manifest(buffer_dir: Path, manifest: Manifest) -> None:
    """Replace the manifest atomically and durably."""
    folder = Path(buffer_dir)
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(manifest.to_json(), out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, folder / MANIFEST_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(folder)


def fsync_dir(folder: Path) -> None:
    """Make a folder's entries (renames, unlinks) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def shard_paths(buffer_dir: Path, manifest: Manifest) -> list[Path]:
    """Paths of the complete shards, oldest first."""
    return [Path(buffer_dir) / SHARDS_DIR / s.name for s in manifest.shards]


def load_transitions(
    buffer_dir: Path, skills: Iterable[str] | None = None, manifest: Manifest | None = None
) -> pa.Table:
    """Every transition of the complete shards (optionally only of ``skills``) as one table.

    Raises:
        BufferCorrupt: a listed shard is missing or unreadable.
    """
    manifest = manifest if manifest is not None else read_manifest(buffer_dir)
    wanted = set(skills) if skills is not None else None
    tables: list[pa.Table] = []
    for entry, path in zip(manifest.shards, shard_paths(buffer_dir, manifest), strict=True):
        if wanted is not None and not wanted.intersection(entry.skills):
            continue
        try:
            table = pq.read_table(path, schema=TRANSITION_SCHEMA)
        except (OSError, pa.ArrowException) as exc:
            raise BufferCorrupt(f"listed shard {path} cannot be read: {exc}") from exc
        if wanted is not None:
            mask = pc.is_in(table.column("skill"), value_set=pa.array(sorted(wanted)))
            table = table.filter(mask)
        tables.append(table)
    if not tables:
        return TRANSITION_SCHEMA.empty_table()
    return pa.concat_tables(tables)
