"""Demo events: what `streamplane produce`, `dev` and `bench` write to INPUT_TOPIC.

An event is about 200 bytes of JSON: event_id, tenant, user_id, event_type, value, ts and,
for some, skill. Malformed ones (on request) are cut-off JSON or break the schema, so the
dead-letter path is exercised with the same stream.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson

from streamplane.platform.kafka.exceptions import QueueFull
from streamplane.platform.kafka.producer import DurableProducer

EVENT_TYPES = ("view", "click", "add_to_cart", "purchase", "signup", "search")
SKILLS = ("navigate", "balance", "grasp")
# Bytes of filler that bring an event to about 200 bytes, like the benchmark's events.
_PAD = "x" * 40


@dataclass(frozen=True, slots=True)
class DemoEvent:
    """One event as written: key (user id) and JSON value."""

    key: bytes
    value: bytes
    bad: bool


def make_event(rng: random.Random, index: int, tenants: int, users: int, bad: bool) -> DemoEvent:
    """A demo event; `bad` makes it malformed JSON or schema-invalid."""
    user = f"user-{rng.randrange(users):06d}"
    event = {
        "event_id": uuid.UUID(int=rng.getrandbits(128)).hex,
        "tenant": f"tenant-{index % tenants}",
        "user_id": user,
        "event_type": rng.choice(EVENT_TYPES),
        "value": round(rng.uniform(-50.0, 500.0), 3),
        "ts": int(time.time() * 1000),
        "skill": rng.choice(SKILLS) if index % 3 == 0 else None,
        "source": "demo",
        "note": _PAD,
    }
    if not bad:
        return DemoEvent(user.encode(), orjson.dumps(event), False)
    if index % 2:
        return DemoEvent(user.encode(), orjson.dumps(event)[:-7], True)  # cut-off JSON
    event["value"] = "not-a-number"
    return DemoEvent(user.encode(), orjson.dumps(event), True)


def events(
    count: int | None, tenants: int, users: int, bad_fraction: float, seed: int
) -> Iterator[DemoEvent]:
    """`count` events (forever when None), a `bad_fraction` of them malformed."""
    rng = random.Random(seed)  # noqa: S311 - demo data, reproducible on purpose
    index = 0
    while count is None or index < count:
        yield make_event(rng, index, tenants, users, rng.random() < bad_fraction)
        index += 1


def produce_events(
    producer: DurableProducer,
    topic: str,
    stream: Iterator[DemoEvent],
    rate: float | None,
    on_progress: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[int, int]:
    """Write events at up to `rate` per second; returns (written, malformed)."""
    written = bad = 0
    started = time.monotonic()
    # Pace in steps of ~20 ms of events: smooth at low rates, cheap at high ones.
    step = max(1, min(1000, int(rate / 50))) if rate else 1000
    for event in stream:
        if should_stop():
            break
        while True:
            try:
                producer.produce(topic, event.value, event.key)
                break
            except QueueFull:
                producer.poll(0.05)
        written += 1
        bad += event.bad
        if written % step == 0:
            producer.poll(0)
            if on_progress is not None:
                on_progress(written)
            if rate:
                ahead = written / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
    producer.flush(60)
    return written, bad
