"""The latency floor before streamplane sees a record: produce, broker, fetch.

The bench's latency runs time a record from the input's produce() to the output's, so
they include what any Kafka consumer pays before it holds a record: the input
producer's linger, the broker's append and the consumer's fetch. This script measures
that part alone on one embedded broker: events paced as the bench paces them (with its
producer settings, `linger.ms` given per variant) and one consumer with the
supervisor's settings, taking each record's age when consume() returns it:

    .venv/bin/python scripts/input_floor.py --rate 4000 --reps 2 5 0

Prints one line per run: the input producer's linger in ms, the load average, and the
p50, p90 and p99 age in ms (the first fifth of each run left out, while connections
warm up).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

from streamplane.config import load_settings
from streamplane.dev.bench.limits import SEED, TENANTS, USERS
from streamplane.dev.bench.percentiles import percentile
from streamplane.dev.broker import EmbeddedBroker
from streamplane.dev.demo_events import events, produce_events
from streamplane.platform.kafka.admin import ensure_topics
from streamplane.platform.kafka.config import consumer_config
from streamplane.platform.kafka.consumer import GroupConsumer
from streamplane.platform.kafka.producer import DurableProducer

PARTITIONS = 6
SECONDS = 6.0
CONSUME_BATCH = 2000
POLL_S = 0.005


def _ignore(_partitions: list[tuple[str, int]]) -> None:
    """Rebalances need no action here: the consumer starts at the beginning."""


def one_run(settings_brokers: str, rate: float, linger_ms: int) -> list[int]:
    """Ages in ms at consume() of `SECONDS` of events at `rate`."""
    settings = load_settings(kafka_brokers=settings_brokers)
    kafka = settings.kafka.as_librdkafka_dict()
    topic = f"floor.{linger_ms}.{time.time_ns()}"
    ensure_topics(kafka, {topic: PARTITIONS})
    consumer = GroupConsumer(consumer_config(settings, f"{topic}.group"))
    consumer.subscribe([topic], on_assign=_ignore, on_revoke=_ignore)
    ages: list[int] = []
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            for message in consumer.consume(CONSUME_BATCH, POLL_S):
                ages.append(int(time.time() * 1000) - message.timestamp()[1])

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    time.sleep(3)  # the assignment
    producer = DurableProducer({**kafka, "linger.ms": linger_ms})
    count = int(rate * SECONDS)
    produce_events(producer, topic, events(count, TENANTS, USERS, 0.0, SEED), rate)
    time.sleep(1)
    stop.set()
    reader.join()
    consumer.close()
    return sorted(ages[len(ages) // 5 :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=4000, help="input events per second")
    parser.add_argument("--reps", type=int, default=2, help="runs of each linger")
    parser.add_argument("lingers", nargs="+", type=int, help="input producer linger.ms")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="streamplane-floor-") as scratch,
        EmbeddedBroker(Path(scratch) / "broker", port=0) as broker,
    ):
        for _ in range(args.reps):
            for linger in args.lingers:
                ages = one_run(broker.bootstrap, args.rate, linger)
                figures = [percentile(ages, p) for p in (50, 90, 99)]
                print(linger, round(os.getloadavg()[0], 2), *figures, flush=True)


if __name__ == "__main__":
    main()
