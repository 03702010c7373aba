"""The feature transform: one definition, two engines (polars on CPU, cuDF on GPU).

`get_engine("polars")` or `get_engine("cudf")` returns a `FeatureEngine`; the contract
both meet (input fields, output columns and types, null and error handling) is written
in `streamplane.platform.features.base`.
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

__all__ = [
    "ENGINE_NAMES",
    "FEATURE_COLUMNS",
    "EngineUnavailable",
    "FeatureBatch",
    "FeatureEngine",
    "FeatureError",
    "RecordError",
    "get_engine",
]
