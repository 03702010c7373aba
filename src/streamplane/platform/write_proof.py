"""The proof an OK ack carries: what the worker wrote for one task, and its check.

Without it a peer that acks every task OK without writing anything would have the
supervisor commit offsets past records that never reached Kafka. The worker tells how
many records the task held, a CRC of their offsets (so the answer is about this task's
records) and how many records it durably wrote per topic; the supervisor refuses an OK
ack whose proof does not match the task it sent, or that wrote fewer records than the
task held (every input record yields at least one output or dead letter: the processor
contract, proto/streamplane/runner/v1/runner.proto, WriteProof).

A proof is checked per task, not per record: one CRC over a packed array of offsets.
"""

from __future__ import annotations

import sys
import zlib
from array import array
from collections.abc import Mapping, Sequence

from streamplane.runner.v1 import runner_pb2


class ProofMismatch(Exception):
    """An OK ack's proof does not add up for the task it answers."""


def offsets_crc32(offsets: Sequence[int]) -> int:
    """CRC-32 of `offsets` as little-endian int64s, in order (the wire contract)."""
    packed = array("q", offsets)
    if sys.byteorder == "big":
        packed.byteswap()
    return zlib.crc32(packed)


def fill(proof: runner_pb2.WriteProof, offsets: Sequence[int], written: Mapping[str, int]) -> None:
    """Fill `proof` (a field of an Ack) for a task with `offsets` and its writes."""
    proof.records = len(offsets)
    proof.offsets_crc32 = offsets_crc32(offsets)
    for topic, count in written.items():
        proof.written[topic] = count


def check(ack: runner_pb2.Ack, offsets: Sequence[int]) -> None:
    """Raise ProofMismatch unless `ack`'s proof answers for a task with `offsets`."""
    if not ack.HasField("proof"):
        raise ProofMismatch(f"OK ack {ack.task_id!r} carries no write proof")
    proof = ack.proof
    if proof.records != len(offsets):
        raise ProofMismatch(
            f"OK ack {ack.task_id!r} answers for {proof.records} records; "
            f"the task holds {len(offsets)}"
        )
    if proof.offsets_crc32 != offsets_crc32(offsets):
        raise ProofMismatch(f"OK ack {ack.task_id!r} answers for other offsets than the task's")
    written = sum(proof.written.values())
    if written < len(offsets):
        raise ProofMismatch(
            f"OK ack {ack.task_id!r} wrote {written} records for a task of {len(offsets)}"
        )
