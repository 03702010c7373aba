"""PROCESSING_GUARANTEE and what it implies: the ordering, the task size."""

from __future__ import annotations

import pytest

from streamplane.config import load_settings
from streamplane.config.plane import EXACTLY_ONCE_BATCH_MAX_RECORDS
from streamplane.exceptions import ConfigError


def test_exactly_once_takes_partition_lanes() -> None:
    settings = load_settings(processing_guarantee="exactly_once")
    assert settings.supervisor.ordering == "partition"
    assert settings.supervisor.exactly_once


def test_exactly_once_with_key_ordering_fails_naming_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(processing_guarantee="exactly_once", ordering="key")
    assert info.value.variable == "ORDERING"


def test_exactly_once_tasks_default_larger() -> None:
    assert load_settings().supervisor.batch_max_records == 2000
    settings = load_settings(processing_guarantee="exactly_once")
    assert settings.supervisor.batch_max_records == EXACTLY_ONCE_BATCH_MAX_RECORDS > 2000


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_a_set_task_size_is_kept_in_either_mode(
    guarantee: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCH_MAX_RECORDS", "2000")
    settings = load_settings(processing_guarantee=guarantee)
    assert settings.supervisor.batch_max_records == 2000
    assert (
        load_settings(
            processing_guarantee=guarantee, batch_max_records=7
        ).supervisor.batch_max_records
        == 7
    )
