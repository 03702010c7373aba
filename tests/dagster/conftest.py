"""Fixtures of the Dagster face's tests, and the few Dagster warnings they tolerate.

pyproject turns every warning into an error. Dagster itself emits a handful while it
builds definitions or starts; each is let through here by its exact message, for the
tests in this folder only, so a new warning still fails the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance

from tests.dagster.services import DagsterStack, start_dagster_stack
from tests.support.topics import FreshTopics

HERE = Path(__file__).parent

# Dagster 1.13 passes `owners` itself when Definitions binds resources to a sensor, and
# then warns that the parameter is in beta; nothing of ours sets it.
# And it reads its own deprecated InitResourceContext.dagster_run when it initializes a
# nested resource (KafkaResource inside StreamplaneResource).
TOLERATED_WARNINGS = (
    "ignore:Parameter `owners` of initializer `SensorDefinition.__init__` is currently in beta"
    ":dagster.BetaWarning",
    "ignore:InitResourceContext.dagster_run is deprecated:DeprecationWarning",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tolerate Dagster's own warnings in this folder's tests, and only there."""
    for item in items:
        if HERE in Path(str(item.path)).parents:
            for spec in TOLERATED_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(spec))


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    """A persistent local Dagster instance (SQLite) in the test's folder."""
    home = tmp_path / "dagster-home"
    home.mkdir()
    with DagsterInstance.local_temp(str(home)) as local:
        yield local


@pytest.fixture(scope="session")
def dagster_stack(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DagsterStack]:
    """A real Dagster webserver and daemon on a fresh topic with a backlog.

    Shared by the end-to-end, browser and CLI tests (each waits for the state it needs);
    stopped, with every run it launched, at the end of the session.
    """
    folder = tmp_path_factory.mktemp("dagster-stack")
    with start_dagster_stack(kafka_bootstrap, folder) as stack:
        yield stack


@pytest.fixture
def topics(fresh_topics: FreshTopics) -> FreshTopics:
    """Fresh topic and group names for one test."""
    return fresh_topics
