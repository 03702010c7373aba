"""Typed admin and lag helpers over confluent-kafka's ``AdminClient``.

Every call is bounded by a ``timeout`` in seconds that covers the whole helper, and
librdkafka's ``KafkaException`` is translated here, at one seam: retriable failures
(broker down, timeouts, a coordinator moving) become :class:`KafkaUnavailable`, the rest
:class:`KafkaAdminError`, both chained to the original.

``conf`` is a librdkafka configuration such as ``{"bootstrap.servers": "host:9092"}``.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from confluent_kafka import (
    OFFSET_INVALID,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)

# confluent-kafka documents NewTopic and OffsetSpec under confluent_kafka.admin but declares
# no __all__ there, so mypy's strict re-export rule needs telling.
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec  # type: ignore[attr-defined]

from streamplane.platform.kafka.errors import (
    UNKNOWN_TOPIC_OR_PART,
    from_error,
    translate,
    translated,
)
from streamplane.platform.kafka.exceptions import (
    KafkaAdminError,
    KafkaPlatformError,
    KafkaUnavailable,
)

__all__ = [
    "ClusterInfo",
    "KafkaConf",
    "MetadataProbe",
    "committed_offsets",
    "delete_topics",
    "describe_cluster",
    "end_offsets",
    "ensure_topics",
    "ensure_topics_like",
    "group_lag",
    "topic_partitions",
    "wait_for_group_coordinator",
]

logger = logging.getLogger(__name__)

KafkaConf: TypeAlias = Mapping[str, str | int | float | bool]
"""A librdkafka configuration, e.g. ``{"bootstrap.servers": "127.0.0.1:9092"}``."""

# How often ensure_topics re-reads metadata while waiting for new topics' leaders.
_METADATA_POLL_S = 0.1


# -------------------------------------------------------------------------------- public


def ensure_topics(
    conf: KafkaConf,
    topics: Mapping[str, int],
    timeout: float = 30,
    replication_factor: int = 1,
) -> None:
    """Create the topics that do not exist yet and wait until every partition has a leader.

    Idempotent: a topic that already exists is left as it is (a different partition
    count is logged, not changed). Returning means producers and consumers can use the
    topics at once.

    Args:
        conf: librdkafka configuration.
        topics: Topic name to partition count.
        timeout: Seconds for the whole call.
        replication_factor: Replicas per partition; 1 suits the single-node dev broker.

    Raises:
        KafkaUnavailable: the cluster did not answer in time.
        KafkaAdminError: a topic was refused (invalid name, partition count, ...).
    """
    if not topics:
        return
    deadline = time.monotonic() + timeout
    admin = _admin(conf)
    new_topics = [
        NewTopic(name, num_partitions=partitions, replication_factor=replication_factor)
        for name, partitions in topics.items()
    ]
    futures = admin.create_topics(
        new_topics, operation_timeout=_remaining(deadline), request_timeout=_remaining(deadline)
    )
    for name, future in futures.items():
        try:
            _result(future, deadline, f"create topic {name!r}")
        except KafkaAdminError as exc:
            if exc.code != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    _wait_for_leaders(admin, topics, deadline)


def ensure_topics_like(
    conf: KafkaConf, source: str, topics: list[str], timeout: float = 30
) -> None:
    """Create those of ``topics`` that are missing, as wide as ``source`` (1 if it is absent).

    The supervisor's output and dead-letter topics are made this way, so that their
    partitions line up with the input's.

    Raises:
        KafkaUnavailable: the cluster did not answer in time.
        KafkaAdminError: a topic was refused.
    """
    deadline = time.monotonic() + timeout
    metadata = _metadata(_admin(conf), None, deadline, "list topics")
    described = metadata.topics.get(source)
    partitions = len(described.partitions) if described and described.partitions else 1
    missing = {t: partitions for t in topics if t not in metadata.topics}
    ensure_topics(conf, missing, timeout=_remaining(deadline))


def wait_for_group_coordinator(conf: KafkaConf, group: str, timeout: float = 10) -> None:
    """Wait until DescribeConsumerGroups answers for ``group`` (its coordinator is ready).

    Raises:
        KafkaUnavailable: no ready coordinator before the deadline.
    """
    deadline = time.monotonic() + timeout
    client = _admin(conf)
    while True:
        future = client.describe_consumer_groups([group], request_timeout=_remaining(deadline))
        try:
            future[group].result(timeout=_remaining(deadline))
            return
        except KafkaException as exc:
            if time.monotonic() + _METADATA_POLL_S >= deadline:
                raise KafkaUnavailable(f"group {group!r} has no ready coordinator: {exc}") from exc
        except concurrent.futures.TimeoutError as exc:
            raise KafkaUnavailable(f"describe group {group!r}: no answer in time") from exc
        time.sleep(_METADATA_POLL_S)


def topic_partitions(conf: KafkaConf, topic: str, timeout: float = 10) -> list[int]:
    """Return the sorted partition ids of ``topic``.

    Raises:
        KafkaUnavailable: the cluster did not answer in time.
        KafkaAdminError: the topic does not exist.
    """
    return _partitions(_admin(conf), topic, time.monotonic() + timeout)


def end_offsets(conf: KafkaConf, topic: str, timeout: float = 10) -> dict[int, int]:
    """Return each partition's high watermark (the offset the next record will get).

    Raises:
        KafkaUnavailable: the cluster did not answer in time.
        KafkaAdminError: the topic does not exist.
    """
    deadline = time.monotonic() + timeout
    admin = _admin(conf)
    return _list_offsets(admin, topic, _partitions(admin, topic, deadline), "latest", deadline)


def committed_offsets(
    conf: KafkaConf, group: str, topic: str, timeout: float = 10
) -> dict[int, int]:
    """Return the offsets ``group`` has committed on ``topic``, by partition.

    A partition the group never committed is absent from the result; an unknown group
    gives an empty dict.

    Raises:
        KafkaUnavailable: the cluster or the group coordinator did not answer in time.
        KafkaAdminError: the request was refused (not authorized, say).
    """
    return _committed(_admin(conf), group, topic, time.monotonic() + timeout)


def group_lag(conf: KafkaConf, group: str, topic: str, timeout: float = 10) -> dict[int, int]:
    """Return, per partition of ``topic``, how many records ``group`` has yet to commit.

    The lag is the high watermark minus the committed offset. A partition without a
    commit counts from its earliest retained offset (what a new consumer reading from
    the beginning would see), and so does a commit older than retention, since those
    records are gone. Every partition of the topic is present.

    Raises:
        KafkaUnavailable: the cluster did not answer in time.
        KafkaAdminError: the topic does not exist, or a request was refused.
    """
    deadline = time.monotonic() + timeout
    admin = _admin(conf)
    partitions = _partitions(admin, topic, deadline)
    ends = _list_offsets(admin, topic, partitions, "latest", deadline)
    starts = _list_offsets(admin, topic, partitions, "earliest", deadline)
    committed = _committed(admin, group, topic, deadline)
    lag: dict[int, int] = {}
    for partition in partitions:
        start = max(committed.get(partition, starts[partition]), starts[partition])
        lag[partition] = max(ends[partition] - start, 0)
    return lag


# ----------------------------------------------------------------------------- internals


def _admin(conf: KafkaConf) -> AdminClient:
    """Build an admin client for one helper call (they are cheap and hold no state)."""
    return AdminClient(dict(conf))


def _remaining(deadline: float) -> float:
    """Seconds left until ``deadline``, at least a millisecond (librdkafka rejects 0)."""
    return max(deadline - time.monotonic(), 0.001)


def _result(future: concurrent.futures.Future[Any], deadline: float, what: str) -> Any:
    """Wait for an admin future until ``deadline``, translating its failure."""
    try:
        return future.result(timeout=_remaining(deadline))
    except KafkaException as exc:
        raise translate(exc, what) from exc
    except concurrent.futures.TimeoutError as exc:
        raise KafkaUnavailable(f"{what}: no answer before the deadline") from exc


def _metadata(admin: AdminClient, topic: str | None, deadline: float, what: str) -> Any:
    """Fetch cluster metadata (of one topic, or of all), translating failures."""
    try:
        return admin.list_topics(topic=topic, timeout=_remaining(deadline))
    except KafkaException as exc:
        raise translate(exc, what) from exc


def _partitions(admin: AdminClient, topic: str, deadline: float) -> list[int]:
    """Return the sorted partition ids of ``topic`` from the cluster metadata."""
    what = f"describe topic {topic!r}"
    metadata = _metadata(admin, topic, deadline, what)
    topic_metadata = metadata.topics.get(topic)
    if topic_metadata is None:
        raise KafkaAdminError(f"{what}: not in the cluster metadata")
    if topic_metadata.error is not None:
        raise from_error(topic_metadata.error, what)
    return sorted(int(partition) for partition in topic_metadata.partitions)


def _list_offsets(
    admin: AdminClient, topic: str, partitions: list[int], which: str, deadline: float
) -> dict[int, int]:
    """Return the earliest or latest offset of each partition."""
    # OffsetSpec's factories carry no annotations in confluent-kafka 2.x.
    spec = (
        OffsetSpec.latest()  # type: ignore[no-untyped-call]
        if which == "latest"
        else OffsetSpec.earliest()  # type: ignore[no-untyped-call]
    )
    request = {TopicPartition(topic, partition): spec for partition in partitions}
    if not request:
        return {}
    futures = admin.list_offsets(request, request_timeout=_remaining(deadline))
    offsets: dict[int, int] = {}
    for topic_partition, future in futures.items():
        info = _result(future, deadline, f"list {which} offsets of {topic!r}")
        offsets[int(topic_partition.partition)] = int(info.offset)
    return offsets


def _committed(admin: AdminClient, group: str, topic: str, deadline: float) -> dict[int, int]:
    """Return the committed offsets of ``group`` on ``topic`` (absent: never committed)."""
    what = f"list offsets committed by group {group!r}"
    # Without a partition list the coordinator answers with every partition the group has
    # committed, so no metadata round trip is needed; other topics are filtered out.
    futures = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group)], request_timeout=_remaining(deadline)
    )
    offsets: dict[int, int] = {}
    for future in futures.values():
        answer = _result(future, deadline, what)
        for topic_partition in answer.topic_partitions or []:
            if topic_partition.topic != topic:
                continue
            if topic_partition.error is not None:
                raise from_error(topic_partition.error, what)
            if topic_partition.offset != OFFSET_INVALID and topic_partition.offset >= 0:
                offsets[int(topic_partition.partition)] = int(topic_partition.offset)
    return offsets


def _wait_for_leaders(admin: AdminClient, topics: Mapping[str, int], deadline: float) -> None:
    """Wait until every partition of ``topics`` has a leader in the broker's metadata.

    Creation returns once the controller has committed the topic; the broker's metadata
    cache follows a moment later, and a producer arriving in between would see
    UNKNOWN_TOPIC_OR_PART.
    """
    pending = dict(topics)
    while True:
        metadata = _metadata(admin, None, deadline, "describe new topics")
        for name in list(pending):
            described = metadata.topics.get(name)
            if described is None or described.error is not None or not described.partitions:
                continue
            if any(partition.leader < 0 for partition in described.partitions.values()):
                continue
            if len(described.partitions) != pending[name]:
                logger.warning(
                    "topic exists with a different partition count",
                    extra={
                        "topic": name,
                        "partitions": len(described.partitions),
                        "requested": pending[name],
                    },
                )
            del pending[name]
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise KafkaUnavailable(f"topics {sorted(pending)} have no leader before the deadline")
        time.sleep(_METADATA_POLL_S)


# ------------------------------------------------------------------ cluster and cleanup


@dataclass(frozen=True)
class ClusterInfo:
    """What the cluster metadata says about the cluster itself.

    ``brokers`` lists the ids of the brokers in the metadata; in KRaft only registered,
    unfenced brokers appear there, so a non-empty list means topics can be used now.
    """

    cluster_id: str | None
    brokers: tuple[int, ...]


def describe_cluster(conf: KafkaConf, timeout: float = 10) -> ClusterInfo:
    """Return the cluster id and the brokers in the metadata (a reachability check).

    Raises:
        KafkaUnavailable: the cluster did not answer in time.
        KafkaAdminError: the request was refused.
    """
    deadline = time.monotonic() + timeout
    with translated("create admin client", KafkaUnavailable):
        admin = _admin(conf)
    return _cluster_info(_metadata(admin, None, deadline, "describe cluster"))


class MetadataProbe:
    """One admin client kept for repeated short probes of the cluster (a readiness loop).

    A client per probe would connect and tear down each time; this one connects on the
    first :meth:`describe` and keeps its connection. Nothing happens in the constructor.
    """

    def __init__(self, conf: KafkaConf) -> None:
        self._conf = dict(conf)
        self._client: AdminClient | None = None

    def describe(self, timeout: float) -> ClusterInfo:
        """Return the cluster id and brokers, waiting at most ``timeout`` seconds.

        Raises:
            KafkaUnavailable: no answer in time (the broker is not up yet, say).
            KafkaAdminError: the request was refused.
        """
        deadline = time.monotonic() + timeout
        if self._client is None:
            with translated("create admin client", KafkaUnavailable):
                self._client = _admin(self._conf)
        return _cluster_info(_metadata(self._client, None, deadline, "describe cluster"))


def delete_topics(
    conf: KafkaConf, topics: list[str], timeout: float = 30
) -> dict[str, KafkaPlatformError]:
    """Delete ``topics``; returns the ones that could not be deleted, with the reason.

    Idempotent: a topic that does not exist counts as deleted. Each topic's outcome is
    its own, so one failure does not hide the others; an empty dict means all went.

    Raises:
        KafkaUnavailable: the client could not be created.
        KafkaAdminError: the request was refused before it was sent (an invalid name).
    """
    if not topics:
        return {}
    deadline = time.monotonic() + timeout
    # The client must outlive its futures (a collected client fails them all); it lives
    # until this function returns.
    with translated("create admin client", KafkaUnavailable):
        admin = _admin(conf)
    with translated("delete topics"):
        futures = admin.delete_topics(
            list(topics),
            operation_timeout=_remaining(deadline),
            request_timeout=_remaining(deadline),
        )
    failures: dict[str, KafkaPlatformError] = {}
    for topic, future in futures.items():
        try:
            _result(future, deadline, f"delete topic {topic!r}")
        except KafkaPlatformError as exc:
            if getattr(exc, "code", None) != UNKNOWN_TOPIC_OR_PART:
                failures[topic] = exc
    return failures


def _cluster_info(metadata: Any) -> ClusterInfo:
    """The cluster id and sorted broker ids of a ``ClusterMetadata``."""
    cluster_id = metadata.cluster_id
    return ClusterInfo(
        cluster_id=str(cluster_id) if cluster_id is not None else None,
        brokers=tuple(sorted(int(broker) for broker in metadata.brokers)),
    )
