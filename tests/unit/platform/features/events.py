"""Builders for demo events and helpers to read engine output in tests."""

from __future__ import annotations

import json
from typing import Any

import orjson

from streamplane.platform.features import FeatureBatch, FeatureEngine


def event(**fields: Any) -> dict[str, Any]:
    """A valid demo event; keyword arguments override or add fields (None stays null)."""
    base: dict[str, Any] = {
        "event_id": "e-1",
        "tenant": "acme",
        "user_id": "u-1",
        "event_type": "view",
        "value": 1.5,
        "ts": 1_704_067_200_000,  # 2024-01-01T00:00:00Z, a Monday
        "skill": "python",
    }
    base.update(fields)
    return base


def without(obj: dict[str, Any], *names: str) -> dict[str, Any]:
    """A copy of `obj` without the named fields."""
    return {key: value for key, value in obj.items() if key not in names}


def encode(*objects: object) -> list[bytes]:
    """JSON-encode each object (stdlib json: unlike orjson, it writes integers past 64 bits)."""
    return [json.dumps(obj, ensure_ascii=False, allow_nan=False).encode() for obj in objects]


def run(engine: FeatureEngine, values: list[bytes]) -> FeatureBatch:
    """Transform with Kafka timestamps 1000, 1001, ... so tests can tell them apart."""
    return engine.transform(values, [1000 + i for i in range(len(values))])


def rows(batch: FeatureBatch) -> list[dict[str, Any]]:
    return [orjson.loads(value) for value in batch.values]


def one_row(engine: FeatureEngine, obj: object) -> dict[str, Any]:
    batch = run(engine, encode(obj))
    assert batch.errors == [], batch.errors
    [row] = rows(batch)
    return row
