"""Property: bad records never change what the good ones produce."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamplane.platform.features import FeatureEngine, get_engine

from .strategies import INT64, records


@settings(
    max_examples=150,
    deadline=None,  # polars' first calls are slow; timings are never asserted
    suppress_health_check=[HealthCheck.too_slow],
)
@given(batch=st.lists(st.tuples(records, INT64), max_size=40))
def test_bad_records_do_not_change_the_good_ones(
    batch: list[tuple[tuple[str | None, bytes], int]],
) -> None:
    engine: FeatureEngine = get_engine("polars")
    raw = [record for (_, record), _ in batch]
    timestamps = [ts for _, ts in batch]
    expected_kinds = [kind for (kind, _), _ in batch]
    valid_positions = [i for i, kind in enumerate(expected_kinds) if kind is None]

    mixed = engine.transform(raw, timestamps)

    error_positions = [error.index for error in mixed.errors]
    assert sorted(mixed.indices + error_positions) == list(range(len(batch)))
    assert mixed.indices == sorted(mixed.indices)
    assert error_positions == sorted(error_positions)
    assert mixed.indices == valid_positions
    assert [error.kind for error in mixed.errors] == [expected_kinds[i] for i in error_positions]
    assert len(mixed.values) == len(mixed.indices)

    alone = engine.transform(
        [raw[i] for i in valid_positions], [timestamps[i] for i in valid_positions]
    )
    assert alone.errors == []
    # Byte-equal, *_in_batch features included: they only ever count valid records.
    assert mixed.values == alone.values
