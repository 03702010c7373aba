"""How long a written record takes to become visible to a read_committed reader.

Under exactly_once a worker's outputs stay invisible to read_committed readers until
its transaction commits; the delay from the record's write (its CreateTime, set at the
worker's produce) to the moment a tailing reader sees it is the price of the guarantee
in latency. A thread tails the output topic while the run goes on.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from streamplane.dev.bench.percentiles import percentile
from streamplane.dev.bench.readers import reader_config
from streamplane.platform.kafka.consumer import BEGINNING, GroupConsumer

__all__ = ["VisibilityTail"]

# How long the tail waits for the last records after the run is over.
SETTLE_S = 15.0


class VisibilityTail:
    """Tails ``topic`` with ``isolation.level=read_committed`` on a thread of its own."""

    def __init__(self, kafka: dict[str, str], topic: str, partitions: int, group: str) -> None:
        self._consumer = GroupConsumer(
            reader_config(
                kafka, group, **{"isolation.level": "read_committed", "fetch.wait.max.ms": 10}
            )
        )
        self._consumer.assign({(topic, p): BEGINNING for p in range(partitions)})
        self.delays_ms: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-visibility", daemon=True)

    def start(self) -> VisibilityTail:
        """Start tailing."""
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            messages = self._consumer.consume(10_000, 0.05)
            now_ms = time.time() * 1000
            self.delays_ms += [_delay(now_ms, m) for m in messages]

    def finish(self, expected: int) -> None:
        """Wait (up to SETTLE_S) until ``expected`` records were seen, then stop."""
        deadline = time.monotonic() + SETTLE_S
        while len(self.delays_ms) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()

    def figures(self, prefix: str) -> dict[str, int | None]:
        """p50, p99 and max of the delays, named ``<prefix>_p50_ms`` and so on."""
        ordered = sorted(self.delays_ms)
        return {
            f"{prefix}_p50_ms": percentile(ordered, 50),
            f"{prefix}_p99_ms": percentile(ordered, 99),
            f"{prefix}_max_ms": ordered[-1] if ordered else None,
            f"{prefix}_records": len(ordered),
        }


def _delay(now_ms: float, message: Any) -> int:
    _, written_ms = message.timestamp()
    return max(0, int(now_ms - written_ms))
