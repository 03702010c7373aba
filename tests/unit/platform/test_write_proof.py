"""The write proof of an OK ack: the worker's fill and the supervisor's check agree on
any honest answer and refuse every answer that does not add up for the task."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamplane.platform import write_proof
from streamplane.platform.write_proof import ProofMismatch
from streamplane.runner.v1 import runner_pb2

offset_lists = st.lists(st.integers(0, 2**62), min_size=1, max_size=200, unique=True).map(sorted)
topics = st.text(alphabet="abcdefgh-._", min_size=1, max_size=12)


def _ack(offsets: list[int], written: dict[str, int]) -> runner_pb2.Ack:
    ack = runner_pb2.Ack(task_id="t-1.1", status=runner_pb2.ACK_STATUS_OK)
    write_proof.fill(ack.proof, offsets, written)
    return ack


def _over(n: int) -> st.SearchStrategy[dict[str, int]]:
    """Per-topic counts adding up to at least `n` (a processor may write more)."""
    return st.dictionaries(topics, st.integers(0, 3 * n + 3), min_size=1, max_size=4).filter(
        lambda counts: sum(counts.values()) >= n
    )


@given(offset_lists, st.data())
def test_an_honest_proof_passes(offsets: list[int], data: st.DataObject) -> None:
    written = data.draw(_over(len(offsets)))
    write_proof.check(_ack(offsets, written), offsets)


@given(offset_lists, st.data())
def test_a_proof_survives_the_wire(offsets: list[int], data: st.DataObject) -> None:
    written = data.draw(_over(len(offsets)))
    message = runner_pb2.WorkerMessage(ack=_ack(offsets, written))
    decoded = runner_pb2.WorkerMessage.FromString(message.SerializeToString())
    write_proof.check(decoded.ack, offsets)
    assert dict(decoded.ack.proof.written) == written


def test_the_crc_is_of_little_endian_int64s() -> None:
    offsets = [0, 1, 2**40]
    packed = b"".join(o.to_bytes(8, "little", signed=True) for o in offsets)
    assert write_proof.offsets_crc32(offsets) == zlib.crc32(packed)


def test_an_ok_ack_without_a_proof_is_refused() -> None:
    ack = runner_pb2.Ack(task_id="t-1.1", status=runner_pb2.ACK_STATUS_OK)
    with pytest.raises(ProofMismatch, match="no write proof"):
        write_proof.check(ack, [1, 2, 3])


@given(offset_lists, st.integers(0, 199))
def test_writing_fewer_records_than_the_task_holds_is_refused(
    offsets: list[int], short: int
) -> None:
    written = max(0, len(offsets) - 1 - short)
    with pytest.raises(ProofMismatch, match="wrote"):
        write_proof.check(_ack(offsets, {"out": written}), offsets)


@given(offset_lists, st.integers(1, 10))
def test_a_proof_for_other_offsets_is_refused(offsets: list[int], shift: int) -> None:
    other = [o + shift for o in offsets]
    with pytest.raises(ProofMismatch, match="other offsets"):
        write_proof.check(_ack(other, {"out": len(other)}), offsets)


@given(offset_lists)
def test_a_proof_of_another_record_count_is_refused(offsets: list[int]) -> None:
    fewer = offsets[:-1]
    with pytest.raises(ProofMismatch, match="answers for"):
        write_proof.check(_ack(fewer, {"out": len(offsets)}), offsets)
