"""A consumer group's offsets, read by the runtime's admin helpers in a child process.

Why a child: librdkafka (confluent-kafka 2.16) dereferences a missing consumer-group
handle when an *admin* client's OffsetFetch answer says NOT_COORDINATOR, which a fresh
cluster says until its group coordinator has loaded, and any cluster may say while the
coordinator moves: the whole process dies with SIGSEGV. In a Dagster code server that
would take down every sensor, schedule and run launch of the location. In a child, a
crash costs one tick and is reported as such; the child's wall-clock limit also bounds
the read whatever librdkafka does. The child first waits (bounded) for the group's
coordinator with DescribeConsumerGroups, which handles NOT_COORDINATOR safely, so the
crash is rare in the first place.

The module imports no Dagster, so the child starts in a fraction of a second. The
request, librdkafka settings included, goes over stdin, never the command line.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamplane.platform.kafka.exceptions import (
    KafkaAdminError,
    KafkaPlatformError,
    KafkaUnavailable,
)

__all__ = ["TopicOffsets", "read_group_offsets"]

# Python and confluent-kafka start in well under a second; five more seconds absorb a
# loaded 2-core machine before the parent gives up on the child.
CHILD_STARTUP_S = 5.0


@dataclass(frozen=True)
class TopicOffsets:
    """One read of a group on a topic: end, committed and lag offsets by partition.

    ``committed`` lacks partitions the group never committed; ``ends`` and ``lag`` have
    every partition of the topic.
    """

    ends: dict[int, int]
    committed: dict[int, int]
    lag: dict[int, int]

    @property
    def total_lag(self) -> int:
        """Records the group has yet to commit, over all partitions."""
        return sum(self.lag.values())


def read_group_offsets(
    conf: Mapping[str, str], group: str, topic: str, timeout: float
) -> TopicOffsets:
    """Read ``group``'s offsets on ``topic`` in a child process, within ``timeout`` seconds.

    Raises:
        KafkaUnavailable: no answer in time, a retriable error, or the child crashed.
        KafkaAdminError: Kafka refused the read (unknown topic, not authorized, ...).
    """
    request = {"conf": dict(conf), "group": group, "topic": topic, "timeout": timeout}
    try:
        child = subprocess.run(
            [sys.executable, "-m", "streamplane.platform.kafka.group_offsets"],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=timeout + CHILD_STARTUP_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise KafkaUnavailable(f"no answer within {timeout:g} s reading offsets") from exc
    return _parse(child)


def _parse(child: subprocess.CompletedProcess[str]) -> TopicOffsets:
    """Turn the child's answer (or its death) into offsets or a Kafka error."""
    if child.returncode < 0:
        name = signal.Signals(-child.returncode).name
        raise KafkaUnavailable(
            f"the admin client crashed ({name}) reading offsets, as librdkafka does when the "
            "group coordinator is not ready; the next tick retries"
        )
    try:
        answer: dict[str, Any] = json.loads(child.stdout)
    except json.JSONDecodeError as exc:
        tail = child.stderr.strip().splitlines()[-3:]
        raise KafkaUnavailable(f"offset reader failed (status {child.returncode}): {tail}") from exc
    if "error" in answer:
        kind = KafkaAdminError if answer["error"] == "admin" else KafkaUnavailable
        raise kind(str(answer["message"]), code=answer.get("code"))
    return TopicOffsets(
        ends=_ints(answer["ends"]), committed=_ints(answer["committed"]), lag=_ints(answer["lag"])
    )


def _ints(raw: Mapping[str, Any]) -> dict[int, int]:
    return {int(k): int(v) for k, v in raw.items()}


# --------------------------------------------------------------------------- the child


def _read(request: Mapping[str, Any]) -> dict[str, Any]:
    """Do the reads the parent asked for; errors become an ``error`` answer."""
    from streamplane.platform.kafka import admin

    conf, group, topic = request["conf"], request["group"], request["topic"]
    deadline = time.monotonic() + float(request["timeout"])

    def left() -> float:
        return max(deadline - time.monotonic(), 0.01)

    try:
        admin.wait_for_group_coordinator(conf, group, timeout=left())
        lag = admin.group_lag(conf, group, topic, timeout=left())
        committed = admin.committed_offsets(conf, group, topic, timeout=left())
        ends = admin.end_offsets(conf, topic, timeout=left())
    except KafkaPlatformError as exc:
        kind = "admin" if isinstance(exc, KafkaAdminError) else "unavailable"
        return {"error": kind, "message": str(exc), "code": getattr(exc, "code", None)}
    return {"ends": ends, "committed": committed, "lag": lag}


def main() -> None:
    """Child entry point: one JSON request on stdin, one JSON answer on stdout."""
    request = json.loads(sys.stdin.read())
    sys.stdout.write(json.dumps(_read(request)))


if __name__ == "__main__":
    main()
