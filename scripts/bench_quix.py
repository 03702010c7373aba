"""The peer: Quix Streams computing the pipeline's per-event features, for comparison.

Runs in a virtual environment of its own (quixstreams pins confluent-kafka below the
version streamplane uses), against a broker and an input topic of demo events that
`streamplane produce` wrote:

    python3 -m venv /tmp/quixvenv && /tmp/quixvenv/bin/pip install quixstreams==3.28.0
    /tmp/quixvenv/bin/python scripts/bench_quix.py --brokers 127.0.0.1:9092 \\
        --input raw.events.demo --count 1000000

One Quix application reads the topic from its beginning, computes value_log1p,
hour_of_day, day_of_week, is_weekend and is_conversion per event with `sdf.apply` (what
a user of Quix would write), writes each result as JSON to a fresh output topic with
Quix's at-least-once guarantee, and stops after `--count` events. Prints one JSON line:
records/s from the first event to the stop (the final flush and commit included) and
the process's CPU per record. Malformed events are skipped, as a Quix user would drop
them; streamplane dead-letters them instead, which costs it more, not less.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time
import uuid
from typing import Any

from quixstreams import Application

MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000
CONVERSIONS = frozenset({"purchase", "signup"})


def features(event: dict[str, Any]) -> dict[str, Any]:
    """The per-event features of streamplane's feature records."""
    value = float(event["value"])
    ts = int(event["ts"])
    day_of_week = (ts // MS_PER_DAY + 3) % 7 + 1
    return {
        "event_id": event.get("event_id"),
        "tenant": event.get("tenant"),
        "user_id": event["user_id"],
        "event_type": event["event_type"],
        "value": value,
        "ts": ts,
        "value_log1p": math.copysign(math.log1p(abs(value)), value),
        "hour_of_day": (ts // MS_PER_HOUR) % 24,
        "day_of_week": day_of_week,
        "is_weekend": day_of_week >= 6,
        "is_conversion": event["event_type"] in CONVERSIONS,
    }


def valid(event: Any) -> bool:
    """Whether an event carries what the features read, with usable types."""
    return (
        isinstance(event, dict)
        and isinstance(event.get("user_id"), str)
        and isinstance(event.get("event_type"), str)
        and isinstance(event.get("value"), int | float)
        and isinstance(event.get("ts"), int)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()

    run = uuid.uuid4().hex[:8]
    app = Application(
        broker_address=args.brokers,
        consumer_group=f"quix-bench-{run}",
        auto_offset_reset="earliest",
        processing_guarantee="at-least-once",
        loglevel="WARNING",
    )
    source = app.topic(args.input, value_deserializer="json")
    output = app.topic(f"quix-bench-{run}.out", value_serializer="json")
    seen = {"events": 0, "first": 0.0}

    def count(event: Any) -> Any:
        if not seen["events"]:
            seen["first"] = time.monotonic()
        seen["events"] += 1
        if seen["events"] >= args.count:
            app.stop()
        return event

    sdf = app.dataframe(source)
    sdf = sdf.update(count).filter(valid).apply(features)
    sdf.to_topic(output)
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    app.run()
    seconds = time.monotonic() - seen["first"]
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    events = seen["events"]
    print(
        json.dumps(
            {
                "peer": "quixstreams",
                "events": events,
                "seconds": round(seconds, 3),
                "records_per_s": round(events / seconds, 1) if seconds > 0 else None,
                "cpu_us_per_record": round(cpu / events * 1e6, 2) if events else None,
            }
        )
    )


if __name__ == "__main__":
    main()
