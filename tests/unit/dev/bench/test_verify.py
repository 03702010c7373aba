"""The bench's record tally and percentile, without a broker."""

from __future__ import annotations

import pytest

from streamplane.dev.bench import Tally, percentile
from streamplane.platform import headers as h


class _Message:
    """Just enough of confluent_kafka.Message for Tally.visit."""

    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self._headers = h.source_headers(topic, partition, offset, "t", 1)

    def headers(self) -> list[tuple[str, str | bytes | None]]:
        return self._headers


@pytest.fixture
def tally() -> Tally:
    return Tally.expecting("in", {0: 3, 1: 2})


def test_tally_counts_lost_and_duplicates(tally: Tally) -> None:
    for partition, offset in [(0, 0), (0, 1), (0, 1), (1, 0)]:
        tally.visit(_Message("in", partition, offset))
    assert tally.lost == 2  # (0, 2) and (1, 1)
    assert tally.duplicates == 1


def test_tally_sets_foreign_records_apart(tally: Tally) -> None:
    tally.visit(_Message("other", 0, 0))
    tally.visit(_Message("in", 0, 99))
    tally.visit(_Message("in", 7, 0))
    assert tally.unexpected == 3
    assert tally.lost == 5
    assert tally.duplicates == 0


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([7], 99) == 7
    assert percentile([], 50) is None
