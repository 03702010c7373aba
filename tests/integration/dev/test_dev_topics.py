"""`make run` provisions every topic of the demo before Dagster starts anything."""

from __future__ import annotations

import pytest

from streamplane.config import load_settings
from streamplane.dev.dagster_dev import DEV_PARTITIONS, provision_topics
from streamplane.platform.kafka.admin import topic_partitions
from streamplane.testing.topics import FreshTopics

pytestmark = pytest.mark.kafka


def test_input_output_and_dead_letter_topics_exist_before_any_run(
    kafka_bootstrap: str, fresh_topics: FreshTopics, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The snapshot schedule's first tick can beat the supervisor run, which used to be
    # the first to make the output topic: that snapshot run failed on a fresh make run.
    monkeypatch.setenv("OUTPUT_TOPIC", fresh_topics.output)
    monkeypatch.delenv("DLQ_TOPIC", raising=False)
    kafka = load_settings(kafka_brokers=kafka_bootstrap, input_topic=fresh_topics.input).kafka
    provision_topics(kafka_bootstrap, kafka)
    conf = {"bootstrap.servers": kafka_bootstrap}
    every = list(range(DEV_PARTITIONS))
    assert topic_partitions(conf, fresh_topics.input) == every
    assert topic_partitions(conf, fresh_topics.output) == every
    assert topic_partitions(conf, f"{fresh_topics.input}.dlq") == every
    provision_topics(kafka_bootstrap, kafka)  # again: nothing to do, no error
