"""CPU and GPU engines agree: same rows, same errors, floats within 1e-9.

Runs where cuDF is installed (a GPU machine); elsewhere the module is skipped.
"""

from __future__ import annotations

import importlib.util
import math
import random
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamplane.platform.features import FEATURE_COLUMNS, FeatureBatch, get_engine

from .events import encode, event, without
from .strategies import INT64, records

if importlib.util.find_spec("cudf") is None:
    pytest.skip("cudf is not installed (GPU machine only)", allow_module_level=True)

# cuDF is installed: a failure to load it now is a real failure, not a reason to skip.
CUDF = get_engine("cudf")
POLARS = get_engine("polars")
TOLERANCE = 1e-9


def assert_same(cpu: FeatureBatch, gpu: FeatureBatch) -> None:
    assert gpu.indices == cpu.indices
    assert gpu.errors == cpu.errors
    assert len(gpu.values) == len(cpu.values)
    for cpu_raw, gpu_raw in zip(cpu.values, gpu.values, strict=True):
        cpu_row, gpu_row = orjson.loads(cpu_raw), orjson.loads(gpu_raw)
        assert tuple(gpu_row) == FEATURE_COLUMNS
        for name in FEATURE_COLUMNS:
            assert_close(name, cpu_row[name], gpu_row[name])


def assert_close(name: str, cpu: Any, gpu: Any) -> None:
    if type(cpu) is float and type(gpu) is float:
        assert math.isclose(cpu, gpu, rel_tol=TOLERANCE, abs_tol=TOLERANCE), (name, cpu, gpu)
    else:
        assert (type(gpu), gpu) == (type(cpu), cpu), name


def demo_batch(size: int, seed: int) -> tuple[list[bytes], list[int]]:
    """A mixed batch: shared users, pre-1970 times, int and float values, ~5% bad records."""
    rng = random.Random(seed)
    values: list[bytes] = []
    for i in range(size):
        obj = event(
            event_id=f"e-{i}",
            tenant=rng.choice(["acme", "globex", "テナント"]),
            user_id=f"u-{rng.randrange(size // 10 + 1)}",
            event_type=rng.choice(["view", "click", "purchase", "signup"]),
            value=rng.choice([rng.uniform(-1e6, 1e6), rng.randrange(-1000, 1000), 0, 1e-20]),
            ts=rng.randrange(-(10**12), 4 * 10**12),
            skill=rng.choice([None, "python", "go"]),
        )
        if rng.random() < 0.2:
            obj = without(obj, "skill")
        roll = rng.random()
        if roll < 0.02:
            values.append(b"{broken")
        elif roll < 0.05:
            values.append(encode({**obj, "value": "1"})[0])
        else:
            values.append(encode(obj)[0])
    return values, [rng.randrange(10**13) for _ in range(size)]


@pytest.mark.parametrize(("size", "seed"), [(1, 0), (37, 1), (500, 2), (5000, 3)])
def test_engines_agree_on_demo_batches(size: int, seed: int) -> None:
    values, timestamps = demo_batch(size, seed)
    assert_same(POLARS.transform(values, timestamps), CUDF.transform(values, timestamps))


def test_engines_agree_on_edge_values() -> None:
    values = encode(
        event(ts=-(2**63), value=-0.0),
        event(ts=2**63 - 1, value=2**64 - 1),
        event(ts=-1, value=-3),
        event(value=1.5e308, user_id="big"),
        event(value=1.5e308, user_id="big"),  # the user's sum overflows to null
        event(user_id='},{"event_id":', event_type="signup", skill=None),
    )
    timestamps = list(range(len(values)))
    assert_same(POLARS.transform(values, timestamps), CUDF.transform(values, timestamps))


def test_engines_agree_on_empty_and_all_bad_batches() -> None:
    for values in ([], [b"{", b"[]"]):
        timestamps = list(range(len(values)))
        assert_same(POLARS.transform(values, timestamps), CUDF.transform(values, timestamps))


@settings(max_examples=30, deadline=None)
@given(batch=st.lists(st.tuples(records, INT64), max_size=40))
def test_engines_agree_on_generated_batches(
    batch: list[tuple[tuple[str | None, bytes], int]],
) -> None:
    values = [record for (_, record), _ in batch]
    timestamps = [ts for _, ts in batch]
    assert_same(POLARS.transform(values, timestamps), CUDF.transform(values, timestamps))
