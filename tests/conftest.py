"""Session-wide test services: one real Kafka broker, and fresh names per test."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from streamplane.dev.broker import EmbeddedBroker
from streamplane.platform.kafka.exceptions import BrokerToolMissing
from tests.support.topics import FreshTopics, fresh_topic_names


@pytest.fixture(autouse=True)
def _sigterm_not_ignored() -> None:
    """Undo a SIGTERM that in-process Dagster execution left ignored.

    Dagster maps SIGTERM to SIGINT's handler and restores both from SIGINT's original one
    (`dagster._utils.interrupts`): in a pytest started with SIGINT ignored (a background
    job of a shell without job control) SIGTERM stays ignored after the first in-process
    materialization, every child inherits that, and tests that stop a child with SIGTERM
    see it killed at the deadline instead (-9 where -15 was due).
    """
    if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


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
