"""Completed offsets above a partition's commit, carried in the commit's metadata.

The committed offset is a partition's lowest outstanding record, so after a crash
everything completed above it would be redone: with one slow task low in a partition,
that is nearly the whole in-flight window written twice. As Confluent's Parallel
Consumer does, each commit also stores which offsets above it are already complete, and
the next owner of the partition skips them (DESIGN.md 3.2): duplicates after a crash
are then bounded by the records in flight at the last commit.

The text is ``sp1:<committed>:<data>``, where data is the runs of completed offsets as
varint (gap, length) pairs, zlib-compressed and base64url-encoded. It is bounded: past
the broker's ``offset.metadata.max.bytes`` a commit would fail, so the highest runs are
left out (skipping fewer records is always safe; it only costs duplicates).
"""

from __future__ import annotations

import base64
import binascii
import zlib
from bisect import bisect_right
from collections.abc import Iterable, Sequence

PREFIX = "sp1"

#: Below the broker's default ``offset.metadata.max.bytes`` (4096).
MAX_METADATA_CHARS = 4000

Run = tuple[int, int]
"""Completed offsets ``[start, end)``."""


def runs_of(offsets: Iterable[int]) -> list[Run]:
    """Sorted, disjoint half-open runs covering ``offsets``."""
    runs: list[Run] = []
    for offset in sorted(set(offsets)):
        if runs and runs[-1][1] == offset:
            runs[-1] = (runs[-1][0], offset + 1)
        else:
            runs.append((offset, offset + 1))
    return runs


def encode(committed: int, completed: Iterable[int], limit: int = MAX_METADATA_CHARS) -> str:
    """The metadata of a commit at ``committed``: the completed offsets above it.

    Offsets at or below ``committed`` are not listed (they are below the commit). An
    empty string when nothing above it is complete.
    """
    runs = [(max(s, committed + 1), e) for s, e in runs_of(completed) if e > committed + 1]
    if not runs:
        return ""
    text = _encode_runs(committed, runs)
    if len(text) <= limit:
        return text
    # The longest prefix of runs that fits: the lowest are the likeliest to be read soon.
    low, high = 0, len(runs)
    while low < high:
        mid = (low + high + 1) // 2
        if len(_encode_runs(committed, runs[:mid])) <= limit:
            low = mid
        else:
            high = mid - 1
    return _encode_runs(committed, runs[:low]) if low else ""


def _encode_runs(committed: int, runs: Sequence[Run]) -> str:
    raw = bytearray()
    previous = committed
    for start, end in runs:
        _varint(raw, start - previous)
        _varint(raw, end - start)
        previous = end
    data = base64.urlsafe_b64encode(zlib.compress(bytes(raw), 6)).rstrip(b"=").decode()
    return f"{PREFIX}:{committed}:{data}"


def _varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def decode(committed: int, metadata: str | None) -> list[Run]:
    """The completed runs a commit at ``committed`` carries; [] for any other text.

    Metadata written by another tool, for another offset (a commit without metadata
    after ours) or damaged yields nothing: the records are then simply redone.
    """
    if not metadata:
        return []
    prefix, _, rest = metadata.partition(":")
    at, _, data = rest.partition(":")
    if prefix != PREFIX or at != str(committed) or not data:
        return []
    try:
        raw = zlib.decompress(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
    except (binascii.Error, ValueError, zlib.error):
        return []
    numbers = _varints(raw)
    if numbers is None or len(numbers) % 2:
        return []
    runs: list[Run] = []
    previous = committed
    for gap, length in zip(numbers[::2], numbers[1::2], strict=True):
        if gap < 1 or length < 1:
            return []  # not ours: runs start above the commit and never touch
        start = previous + gap
        runs.append((start, start + length))
        previous = start + length
    return runs


def _varints(raw: bytes) -> list[int] | None:
    numbers: list[int] = []
    value = shift = 0
    for byte in raw:
        value |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            if shift > 63:
                return None
        else:
            numbers.append(value)
            value = shift = 0
    return None if shift else numbers


class Skips:
    """The completed runs of a new assignment, asked about in ascending offset order."""

    __slots__ = ("_ends", "_runs")

    def __init__(self, runs: Sequence[Run]) -> None:
        self._runs = list(runs)
        self._ends = [end for _, end in self._runs]

    def __contains__(self, offset: int) -> bool:
        i = bisect_right(self._ends, offset)
        return i < len(self._runs) and self._runs[i][0] <= offset

    @property
    def last(self) -> int:
        """One past the highest completed offset (-1 when there is none)."""
        return self._ends[-1] if self._ends else -1

    @property
    def count(self) -> int:
        """How many offsets the runs cover."""
        return sum(end - start for start, end in self._runs)
