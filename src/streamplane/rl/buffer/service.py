"""The RL buffer's Kafka side: consume RL_RESULTS_TOPIC into Parquet shards.

:class:`BufferService` owns one consumer and one :class:`ShardWriter`. It assigns itself
every partition of the results topic (the directory's :class:`BufferLock` already makes
it the only writer, so group rebalancing has nothing to share out), starts each
partition at the manifest's next offset (else the group's committed offset, else the
beginning), gathers transitions until ``RL_BUFFER_SHARD_ROWS`` or
``RL_BUFFER_LINGER_S``, writes them as one shard, and commits the offsets to Kafka only
after the manifest naming that shard is durable. The consumer group's committed offsets
therefore trail or equal the manifest's, never lead them, and the group's lag is the
buffer's backlog.

A second service on the same directory waits as a hot standby until the lock frees.
Run it in the supervisor with :meth:`BufferService.start` / :meth:`BufferService.stop`,
or on its own with :func:`run_rl_buffer` (``streamplane rl-buffer``, or
``python -m streamplane.rl.buffer.service``).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from streamplane.config import RLSettings, Settings, load_settings
from streamplane.exceptions import ConfigError
from streamplane.platform.kafka.admin import ensure_topics, topic_partitions
from streamplane.platform.kafka.config import admin_config, consumer_config
from streamplane.platform.kafka.consumer import BEGINNING, GroupConsumer
from streamplane.platform.kafka.exceptions import (
    CommitFailed,
    KafkaAdminError,
    KafkaPlatformError,
    KafkaUnavailable,
)
from streamplane.rl import metrics as tm
from streamplane.rl.buffer.manifest import Manifest
from streamplane.rl.buffer.shards import BufferLock, ShardWriter
from streamplane.rl.exceptions import BufferLocked, ReplayBufferError
from streamplane.rl.transitions import parse_transition

logger = logging.getLogger(__name__)

# Partitions for a results topic the buffer has to create itself; a topic that exists
# keeps its own count.
DEFAULT_RESULTS_PARTITIONS = 4
# How often the topic's partition list is re-read, to pick up partitions added later.
_PARTITION_REFRESH_S = 30.0
# How long one consume() call blocks: the latency of noticing stop() or the linger.
_POLL_S = 0.2
# How long a standby waits between attempts at the directory lock.
_LOCK_RETRY_S = 1.0
# After a Kafka error the loop backs off this long before trying again.
_ERROR_BACKOFF_S = 1.0
# Reading the group's committed offsets at start: a coordinator still loading (seen right
# after a broker start, NOT_COORDINATOR) settles within seconds; 30 tries is ample.
_COMMITTED_ATTEMPTS = 30
# After Kafka stayed unreachable through those retries, the whole consumer is rebuilt
# after this pause.
_RESTART_BACKOFF_S = 5.0


class BufferService:
    """Consumes RL transitions into the replay buffer; see the module docstring.

    Args:
        settings: Kafka connection and the results topic.
        training: RL settings (buffer directory, shard size, linger, retention).
        clock: Monotonic seconds, for the linger.
        wall_clock: Wall seconds, for shard timestamps.
    """

    def __init__(
        self,
        settings: Settings,
        training: RLSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._training = training if training is not None else settings.rl
        self._topic = self._training.results_topic
        self._dir = self._training.buffer_dir
        self._clock = clock
        self._writer = ShardWriter(
            self._dir, self._topic, self._training.rl_buffer_max_bytes, wall_clock
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.ready = threading.Event()

    # ------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Run in a daemon thread; returns at once."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run_thread, name="rl-buffer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Flush what is gathered, commit, and stop the thread (waits up to ``timeout``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def error(self) -> BaseException | None:
        """The exception that ended the thread, if one did."""
        return self._error

    @property
    def manifest(self) -> Manifest:
        """The manifest as of the last shard written."""
        return self._writer.manifest

    def _run_thread(self) -> None:
        try:
            self.run(self._stop)
        except BaseException as exc:
            self._error = exc
            logger.exception("RL buffer stopped on an error")

    # ------------------------------------------------------------------------ loop

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; flush and commit before returning.

        Kafka being unreachable is retried until ``stop``.

        Raises:
            ReplayBufferError: the buffer directory is corrupt.
            KafkaAdminError: the results topic cannot be created (not authorized, say).
        """
        lock = BufferLock(self._dir)
        while True:
            try:
                lock.acquire()
                break
            except BufferLocked:
                logger.info("RL buffer directory is held; waiting as a standby")
                if stop.wait(_LOCK_RETRY_S):
                    return
        try:
            manifest = self._writer.open()
            _publish_gauges(manifest)
            conf = admin_config(self._settings)
            while not stop.is_set():
                try:
                    self._ensure_topic(conf)
                    consumer = GroupConsumer(self._consumer_conf())
                    try:
                        self._consume(consumer, stop, conf)
                    finally:
                        consumer.close()
                    return
                except KafkaUnavailable as exc:
                    # Gathered rows are dropped with the consumer; the next one resumes
                    # at the manifest's offsets and reads them again.
                    logger.warning(
                        "RL buffer: Kafka unavailable; retrying", extra={"error": str(exc)}
                    )
                    stop.wait(_RESTART_BACKOFF_S)
        finally:
            lock.release()

    def _ensure_topic(self, conf: dict[str, str]) -> None:
        """Create the results topic if it does not exist (an existing one is left as is)."""
        try:
            topic_partitions(conf, self._topic)
        except KafkaAdminError:
            ensure_topics(conf, {self._topic: DEFAULT_RESULTS_PARTITIONS})

    def _consumer_conf(self) -> dict[str, Any]:
        conf = consumer_config(self._settings, self._training.rl_buffer_group)
        conf["client.id"] = "streamplane-rl-buffer"
        return conf

    def _consume(
        self, consumer: GroupConsumer, stop: threading.Event, admin: dict[str, str]
    ) -> None:
        partitions = self._assign(consumer, admin, [], stop)
        self._commit(consumer)
        self.ready.set()
        rows: list[dict[str, Any]] = []
        positions: dict[int, int] = {}
        first_at: float | None = None
        refreshed = self._clock()
        linger, shard_rows = self._training.rl_buffer_linger_s, self._training.rl_buffer_shard_rows
        while not stop.is_set():
            messages = consumer.consume(1000, _POLL_S)
            for message in messages:
                partition, offset = message.partition(), message.offset()
                positions[partition] = offset + 1
                if first_at is None:
                    first_at = self._clock()
                row = _to_row(message.value() or b"", partition, offset, message.timestamp()[1])
                if row is None:
                    tm.BUFFER_INVALID.inc()
                else:
                    rows.append(row)
            if positions and (
                len(rows) >= shard_rows
                or (first_at is not None and self._clock() - first_at >= linger)
            ):
                self._flush(consumer, rows, positions)
                rows, positions, first_at = [], {}, None
            if self._clock() - refreshed >= _PARTITION_REFRESH_S:
                refreshed = self._clock()
                partitions = self._assign(consumer, admin, partitions, stop, positions)
        if positions:
            self._flush(consumer, rows, positions)

    def _flush(
        self, consumer: GroupConsumer, rows: list[dict[str, Any]], positions: dict[int, int]
    ) -> None:
        manifest = self._writer.write_shard(rows, positions)
        self._commit(consumer)
        counts: dict[str, int] = {}
        for row in rows:
            counts[row["skill"]] = counts.get(row["skill"], 0) + 1
        for skill, n in counts.items():
            tm.SKILL_EVENTS.labels(tm.skill_label(skill)).inc(n)
        _publish_gauges(manifest)
        logger.info(
            "RL buffer shard written",
            extra={"rows": len(rows), "transitions": manifest.transitions, "bytes": manifest.bytes},
        )

    def _commit(self, consumer: GroupConsumer) -> None:
        """Commit the manifest's offsets (the manifest is durable by now)."""
        offsets = {(self._topic, p): o for p, o in self._writer.manifest.next_offsets.items()}
        try:
            consumer.commit(offsets, asynchronous=False)
        except CommitFailed as exc:
            # Harmless for correctness: the manifest, not the group, says where to resume.
            logger.warning("RL buffer commit failed", extra={"error": str(exc)})

    def _assign(
        self,
        consumer: GroupConsumer,
        admin: dict[str, str],
        known: list[int],
        stop: threading.Event,
        pending: dict[int, int] | None = None,
    ) -> list[int]:
        """Assign every partition of the topic at its resume offset (if the list changed)."""
        try:
            partitions = topic_partitions(admin, self._topic)
        except KafkaPlatformError as exc:
            if known:
                logger.warning("cannot re-read the results topic", extra={"error": str(exc)})
                return known
            raise
        if partitions == known:
            return known
        manifest = self._writer.manifest
        committed = self._committed(
            consumer, [p for p in partitions if p not in manifest.next_offsets], stop
        )
        assignment = {}
        for p in partitions:
            start = (pending or {}).get(p, manifest.next_offsets.get(p, committed.get(p)))
            assignment[(self._topic, p)] = start if start is not None else BEGINNING
        consumer.assign(assignment)
        logger.info("RL buffer assigned", extra={"topic": self._topic, "partitions": partitions})
        return partitions

    def _committed(
        self, consumer: GroupConsumer, partitions: list[int], stop: threading.Event
    ) -> dict[int, int]:
        """The group's committed offsets of ``partitions`` (those the manifest lacks).

        A coordinator that is moving or still loading answers with a retriable error for
        a while; that is retried with backoff, up to :data:`_COMMITTED_ATTEMPTS` times.

        Raises:
            KafkaUnavailable: the coordinator never answered.
        """
        if not partitions:
            return {}
        request = [(self._topic, p) for p in partitions]
        for _ in range(_COMMITTED_ATTEMPTS):
            try:
                answer = consumer.committed(request, timeout=10)
            except KafkaPlatformError as exc:
                logger.warning("RL buffer cannot read committed offsets", extra={"error": str(exc)})
                if stop.wait(_ERROR_BACKOFF_S):
                    break
                continue
            return {p: offset for (_, p), offset in answer.items()}
        raise KafkaUnavailable(f"cannot read the committed offsets of {self._topic!r}")


def _to_row(value: bytes, partition: int, offset: int, timestamp_ms: int) -> dict[str, Any] | None:
    try:
        row = parse_transition(value)
    except ValueError:
        return None
    row["src_partition"] = partition
    row["src_offset"] = offset
    row["timestamp_ms"] = max(timestamp_ms, 0)
    row["reward"] = float(row["reward"])
    return row


def _publish_gauges(manifest: Manifest) -> None:
    by_skill = manifest.transitions_by_skill()
    shards = manifest.shards_by_skill()
    for skill, n in by_skill.items():
        tm.BUFFER_TRANSITIONS.labels(tm.skill_label(skill)).set(n)
        tm.BUFFER_SHARDS.labels(tm.skill_label(skill)).set(shards.get(skill, 0))
    tm.BUFFER_BYTES.set(manifest.bytes)


def run_rl_buffer(settings: Settings, training: RLSettings | None = None) -> int:
    """Run the buffer in the foreground until SIGINT/SIGTERM; return the exit status.

    0 after a signal (everything gathered was flushed and committed), 2 on a
    configuration error, 1 when the buffer directory is corrupt or Kafka fails.
    """
    try:
        service = BufferService(settings, training)
    except ConfigError as exc:
        print(f"streamplane rl-buffer: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def handle(signum: int, _frame: object) -> None:
        logger.info("RL buffer stopping", extra={"signal": signum})
        stop.set()

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        service.run(stop)
    except (ReplayBufferError, KafkaPlatformError) as exc:
        print(f"streamplane rl-buffer: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    return 0


def main() -> int:
    """``python -m streamplane.rl.buffer.service``: settings from the env."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"rl-buffer: {exc}", file=sys.stderr)
        return 2
    return run_rl_buffer(settings)


if __name__ == "__main__":
    sys.exit(main())
