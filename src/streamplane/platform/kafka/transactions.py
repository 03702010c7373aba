"""Transactional writes: a task's outputs and its input offsets committed as one.

A :class:`TransactionalProducer` has one open transaction at a time. Its ``commit``
takes the offsets to commit for the input partitions and the consumer group's metadata,
which may come from another process (the supervisor's consumer): librdkafka's
serialised ``consumer_group_metadata`` bytes, sent with each task. Since KIP-447 the
group coordinator refuses offsets sent with a stale generation, so work handed out
before a rebalance cannot commit after it.

:func:`fence` takes a transactional id away from a producer that may still be alive (a
worker that stopped answering): afterwards that producer can neither write nor commit,
and its open transaction is aborted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka import TopicPartition as _TP

from streamplane.platform.kafka.errors import translate, translated
from streamplane.platform.kafka.exceptions import (
    KafkaUnavailable,
    ProduceFailed,
    TransactionAborted,
    TransactionFenced,
)
from streamplane.platform.kafka.types import Headers, TopicPartition

logger = logging.getLogger(__name__)

# Codes that mean "this producer is no longer the owner of its transactional id".
_FENCED_CODES = frozenset(
    {
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    }
)


def transactional_config(
    conf: Mapping[str, object], transactional_id: str, timeout_ms: int
) -> dict[str, object]:
    """``conf`` made transactional under ``transactional_id``."""
    message_timeout = int(str(conf.get("message.timeout.ms", timeout_ms)))
    return {
        **conf,
        # librdkafka refuses a record timeout longer than the transaction's.
        "message.timeout.ms": min(message_timeout, timeout_ms),
        "transactional.id": transactional_id,
        # An open transaction of a producer that died holds back read_committed readers
        # of its partitions until the broker aborts it after this long.
        "transaction.timeout.ms": timeout_ms,
    }


class TransactionalProducer:
    """One transactional librdkafka producer; call it from one thread.

    ``begin``, ``produce`` any number of times, then ``commit`` (or ``abort``). Delivery
    reports are not needed: a committed transaction is durable as a whole.
    """

    def __init__(self, conf: Mapping[str, object], timeout_s: float = 30.0) -> None:
        self.transactional_id = str(conf["transactional.id"])
        self._timeout_s = timeout_s
        with translated("create transactional producer", KafkaUnavailable):
            self._producer = Producer(dict(conf))
        self._open = False
        self.fenced = False
        self._call("init transactions", self._producer.init_transactions, timeout_s)

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open."""
        return self._open

    def begin(self) -> None:
        """Open a transaction (one at a time)."""
        self._call("begin transaction", self._producer.begin_transaction)
        self._open = True

    def produce(
        self, topic: str, value: bytes | None, key: bytes | None, headers: Headers | None
    ) -> None:
        """Queue one record into the open transaction, waiting while the queue is full.

        Raises:
            ProduceFailed: librdkafka refused the record outright (too large, say).
            TransactionFenced: the producer lost its transactional id.
        """
        produce = self._producer.produce
        while True:
            try:
                produce(topic, value, key, headers=headers)
                return
            except BufferError:
                self._producer.poll(0.005)
            except KafkaException as exc:
                raise self._translate(exc, f"produce to {topic!r}", ProduceFailed) from exc

    def commit(self, offsets: Mapping[TopicPartition, int], group_metadata: bytes) -> None:
        """Send ``offsets`` with ``group_metadata``, then commit the transaction.

        Raises:
            TransactionAborted: it could not commit; it has been aborted.
            TransactionFenced: the producer lost its transactional id.
        """
        try:
            if offsets:
                positions = [_TP(t, p, o) for (t, p), o in offsets.items()]
                self._producer.send_offsets_to_transaction(
                    positions, group_metadata, self._timeout_s
                )
            self._producer.commit_transaction(self._timeout_s)
        except KafkaException as exc:
            error = self._translate(exc, "commit transaction", TransactionAborted)
            if isinstance(error, TransactionFenced):
                self._open = False
                raise error from exc
            self.abort()
            raise TransactionAborted(str(error)) from exc
        self._open = False

    def abort(self) -> None:
        """Abort the open transaction (nothing it wrote becomes visible); never raises.

        A fenced producer's transaction is aborted by the broker already.
        """
        if not self._open:
            return
        self._open = False
        if self.fenced:
            return
        try:
            self._producer.abort_transaction(self._timeout_s)
        except KafkaException as exc:
            # Left open, the broker aborts it after transaction.timeout.ms.
            self._translate(exc, "abort transaction", TransactionAborted)
            logger.warning("abort failed", extra={"error": str(exc)})

    def close(self) -> None:
        """Abort what is open and let go of the producer."""
        self.abort()
        self._producer.flush(0)

    def _call(self, what: str, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except KafkaException as exc:
            raise self._translate(exc, what, KafkaUnavailable) from exc

    def _translate(self, exc: KafkaException, what: str, permanent: Any) -> Any:
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and (
            error.code() in _FENCED_CODES or (error.fatal() and not error.txn_requires_abort())
        ):
            self.fenced = True
            return TransactionFenced(f"{what}: {error.str()} ({error.name()})")
        return translate(exc, what, permanent)


def fence(conf: Mapping[str, object], timeout_s: float = 30.0) -> None:
    """Take ``conf``'s ``transactional.id`` from whoever holds it; its open transaction aborts.

    Returns once the broker has completed (committed or aborted) the previous holder's
    transaction, so offsets read afterwards are final.

    Raises:
        KafkaUnavailable: the transaction coordinator did not answer in time.
    """
    TransactionalProducer(conf, timeout_s=timeout_s).close()
