from __future__ import annotations

import pytest

from streamplane.platform.features import FeatureEngine, get_engine


@pytest.fixture
def engine() -> FeatureEngine:
    return get_engine("polars")
