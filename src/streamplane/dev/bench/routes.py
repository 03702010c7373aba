"""Where one bench run reads and writes: its topics and consumer group."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Route:
    """Where one run reads and writes."""

    input: str
    output: str
    dlq: str
    group: str

    @property
    def name(self) -> str:
        """The run's short name: the last part of the group (`pipeline1`, `latency`)."""
        return self.group.rsplit(".", 1)[-1]
