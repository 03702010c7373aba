"""The feature transforms: one definition each, two engines (polars on CPU, cuDF on GPU).

Two feature sets share the engines' names:

- the streaming features (`streamplane.platform.features.base`): JSON records of one
  task in, one JSON feature row out per valid record; what a worker computes.
- the window features (`streamplane.platform.features.window`): an Arrow table of
  events in, per-user and per-user-window aggregates out; what a backfill computes on
  batches of a million rows and more, where a GPU wins.

`load_engine(name)` / `load_window_engine(name)` return an engine that has already run
once here, and raise `EngineUnavailable` (one line: what is missing, how to fix it) when
it cannot; `get_engine` / `get_window_engine` only import it.
"""

from streamplane.platform.features.base import (
    ENGINE_NAMES,
    FEATURE_COLUMNS,
    FeatureBatch,
    FeatureEngine,
    RecordError,
    get_engine,
)
from streamplane.platform.features.exceptions import EngineUnavailable, FeatureError
from streamplane.platform.features.loading import load_engine, load_window_engine
from streamplane.platform.features.window import (
    WINDOW_COLUMNS,
    WINDOW_SCHEMA,
    WindowEngine,
    get_window_engine,
)

__all__ = [
    "ENGINE_NAMES",
    "FEATURE_COLUMNS",
    "WINDOW_COLUMNS",
    "WINDOW_SCHEMA",
    "EngineUnavailable",
    "FeatureBatch",
    "FeatureEngine",
    "FeatureError",
    "RecordError",
    "WindowEngine",
    "get_engine",
    "get_window_engine",
    "load_engine",
    "load_window_engine",
]
