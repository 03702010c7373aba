"""The raw baseline: consume a batch, produce it, flush, commit; by hand, in one process.

What a good engineer would write with confluent-kafka directly, with the pipeline's
client settings; the pipeline's throughput is reported as a ratio to it. It goes
through the Kafka layer's thin wrappers (one call each, error messages dealt with
inside ``consume``), so it pays what the pipeline pays for them and no more.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, NoReturn

from streamplane.dev.bench.exceptions import BenchError
from streamplane.dev.bench.limits import PASSTHROUGH_BATCH, STALL_TIMEOUT_S

if TYPE_CHECKING:
    from tqdm import tqdm

    from streamplane.dev.bench.routes import Route
    from streamplane.platform.kafka.consumer import GroupConsumer
    from streamplane.platform.kafka.producer import DurableProducer

__all__ = ["copy_all"]


def copy_all(
    consumer: GroupConsumer,
    producer: DurableProducer,
    route: Route,
    ends: Mapping[int, int],
    failures: list[str],
    bar: tqdm[NoReturn],
) -> None:
    """Copy every record up to `ends`: consume a batch, produce, flush, commit."""
    remaining = {p for p, end in ends.items() if end > 0}
    positions: dict[int, int] = {}
    idle_since = time.monotonic()
    while remaining:
        messages = consumer.consume(PASSTHROUGH_BATCH, 0.5)
        if not messages:
            if time.monotonic() - idle_since > STALL_TIMEOUT_S:
                raise BenchError(f"passthrough read nothing for {STALL_TIMEOUT_S:.0f} s")
            continue
        for message in messages:
            producer.produce(route.output, message.value(), message.key())
            positions[message.partition()] = message.offset()
        if producer.flush(60) or failures:
            raise BenchError(f"passthrough writes failed: {failures[:1] or 'flush timed out'}")
        consumer.commit({(route.input, p): o + 1 for p, o in positions.items()}, asynchronous=False)
        bar.update(len(messages))
        idle_since = time.monotonic()
        remaining = {p for p in remaining if positions.get(p, -1) + 1 < ends[p]}
