"""Session-wide test services: one real Kafka broker, and fresh names per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from streamplane.dev.broker import EmbeddedBroker
from streamplane.platform.kafka.exceptions import BrokerToolMissing
from tests.support.topics import FreshTopics, fresh_topic_names


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap of one embedded Kafka broker shared by the whole session.

    ``STREAMPLANE_TEST_KAFKA=host:port`` uses that cluster instead. Without java/mvn the
    dependent tests are skipped with the install hint, or fail under
    ``STREAMPLANE_REQUIRE_ALL=1`` (CI must never pass by skipping).
    """
    external = os.environ.get("STREAMPLANE_TEST_KAFKA")
    if external:
        yield external
        return
    broker = EmbeddedBroker(tmp_path_factory.mktemp("kafka"), port=0)
    try:
        bootstrap = broker.start()
    except BrokerToolMissing as exc:
        if os.environ.get("STREAMPLANE_REQUIRE_ALL") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    try:
        yield bootstrap
    finally:
        broker.stop()


@pytest.fixture
def fresh_topics() -> FreshTopics:
    """Topic and group names unique to this test (the topics are not created)."""
    return fresh_topic_names()
