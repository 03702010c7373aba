"""One test's broker, topics and group, and demo data written with `streamplane produce`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from streamplane.platform.kafka import admin
from streamplane.testing.deadline import wait_until
from streamplane.testing.procs import Processes
from streamplane.testing.topics import FreshTopics

__all__ = ["Stack", "produce_demo"]


@dataclass(frozen=True)
class Stack:
    """One test's broker, topics and group, and the settings every process shares."""

    bootstrap: str
    topics: FreshTopics

    @property
    def conf(self) -> dict[str, str]:
        return {"bootstrap.servers": self.bootstrap}

    def env(self, **extra: Any) -> dict[str, str]:
        """Settings variables for a supervisor or worker of this stack, plus `extra`."""
        env = {
            "KAFKA_BROKERS": self.bootstrap,
            "INPUT_TOPIC": self.topics.input,
            "OUTPUT_TOPIC": self.topics.output,
            "DLQ_TOPIC": self.topics.dlq,
            "CONSUMER_GROUP": self.topics.group,
            "LOG_LEVEL": "INFO",
        }
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def end_offsets(self) -> dict[int, int]:
        return admin.end_offsets(self.conf, self.topics.input)

    def committed(self) -> dict[int, int]:
        return admin.committed_offsets(self.conf, self.topics.group, self.topics.input)

    def wait_committed_at_end(self, timeout: float, ends: dict[int, int] | None = None) -> None:
        """Wait until the group's committed offsets equal the input's end offsets."""
        target = ends if ends is not None else self.end_offsets()
        wanted = {p: e for p, e in target.items() if e > 0}

        def caught_up() -> bool:
            committed = self.committed()
            return all(committed.get(p) == e for p, e in wanted.items())

        wait_until(
            caught_up,
            timeout,
            interval=0.25,
            message=lambda: f"committed {self.committed()} never reached the end {wanted}",
        )


_WROTE = re.compile(r"wrote (\d+) events \((\d+) malformed\)")


def produce_demo(
    procs: Processes,
    stack: Stack,
    count: int,
    partitions: int,
    tenants: int = 3,
    bad_fraction: float = 0.0,
    users: int = 1000,
    seed: int = 7,
    timeout: float = 120,
) -> tuple[int, int]:
    """Fill the input topic with `streamplane produce`; returns (written, malformed)."""
    proc = procs.run(
        "produce",
        [
            "produce",
            f"--count={count}",
            f"--partitions={partitions}",
            f"--tenants={tenants}",
            f"--users={users}",
            f"--bad-fraction={bad_fraction}",
            f"--seed={seed}",
        ],
        {"KAFKA_BROKERS": stack.bootstrap, "INPUT_TOPIC": stack.topics.input},
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.tail()
    match = _WROTE.search(proc.stdout())
    assert match, proc.tail()
    written, bad = int(match.group(1)), int(match.group(2))
    assert written == count
    return written, bad
