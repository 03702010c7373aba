"""librdkafka errors become streamplane's at one seam, transient apart from permanent."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from streamplane.exceptions import PermanentError, TransientError
from streamplane.platform.kafka.errors import is_partition_eof, translate, translated
from streamplane.platform.kafka.exceptions import (
    CommitFailed,
    KafkaAdminError,
    KafkaUnavailable,
    ProduceFailed,
)


def test_retriable_codes_become_unavailable() -> None:
    error = translate(KafkaException(KafkaError(KafkaError._TRANSPORT)), "list topics")
    assert isinstance(error, KafkaUnavailable)
    assert isinstance(error, TransientError)
    assert error.code == KafkaError._TRANSPORT
    assert str(error).startswith("list topics: ")


def test_permanent_codes_take_the_callers_kind() -> None:
    exc = KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    error = translate(exc, "produce", ProduceFailed)
    assert isinstance(error, ProduceFailed)
    assert isinstance(error, PermanentError)
    assert error.code == KafkaError.MSG_SIZE_TOO_LARGE
    assert isinstance(translate(exc, "admin"), KafkaAdminError)


def test_commit_failures_without_a_code_field_still_translate() -> None:
    error = translate(
        KafkaException(KafkaError(KafkaError.ILLEGAL_GENERATION)), "commit", CommitFailed
    )
    assert isinstance(error, CommitFailed)


def test_translated_chains_the_original() -> None:
    original = KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
    with pytest.raises(KafkaAdminError) as caught, translated("describe"):
        raise original
    assert caught.value.__cause__ is original


def test_partition_eof_is_recognised() -> None:
    assert is_partition_eof(KafkaError(KafkaError._PARTITION_EOF))
    assert not is_partition_eof(KafkaError(KafkaError._TRANSPORT))
