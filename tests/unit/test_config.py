"""PROCESSING_GUARANTEE and the ordering it needs."""

from __future__ import annotations

import pytest

from streamplane.config import load_settings
from streamplane.exceptions import ConfigError


def test_exactly_once_takes_partition_lanes() -> None:
    settings = load_settings(processing_guarantee="exactly_once")
    assert settings.supervisor.ordering == "partition"
    assert settings.supervisor.exactly_once


def test_exactly_once_with_key_ordering_fails_naming_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(processing_guarantee="exactly_once", ordering="key")
    assert info.value.variable == "ORDERING"
