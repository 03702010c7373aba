"""Progress lines of the long-running supervisor and worker runs, for their event logs.

The run's op polls the process it started every few seconds and logs one line when
something moved: records done and the rate since the last line, credit in use, errors,
dead letters. A quiet process logs nothing (an idle worker does not fill its log).

- A supervisor is read from its own ``/v1/status`` (``SUPERVISOR_HTTP_LISTEN``).
- A worker from the supervisor's ``/v1/workers`` entry of its ``WORKER_ID`` (records
  done, credit declared and in use, failed attempts) and its own ``/metrics``
  (``WORKER_METRICS_LISTEN``: dead letters by kind).

No Dagster here: the op hands the lines to ``context.log``.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from streamplane.config import parse_listen

__all__ = ["Progress", "fetch_json", "local_url", "supervisor_progress", "worker_progress"]

# One HTTP read must never hold up the op's watch loop (heartbeats, child exit) for long.
HTTP_TIMEOUT_S = 2.0


def local_url(listen: str, path: str) -> str:
    """``http://HOST:PORT/path`` for a listen address (a wildcard host as loopback)."""
    host, port = parse_listen(listen)
    host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    return f"http://{host}:{port}{path}"


def fetch_json(url: str) -> Any:
    """GET ``url`` and parse its JSON body."""
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:  # noqa: S310 - http only
        return json.loads(response.read())


def fetch_metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET a Prometheus text endpoint; samples by (name, sorted labels)."""
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:  # noqa: S310 - http only
        text = response.read().decode()
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@dataclass
class Progress:
    """Turns successive readings into lines: only when they changed, with rates."""

    read: Callable[[], Mapping[str, float]]
    describe: Callable[[Mapping[str, float], float], str]
    clock: Callable[[], float] = time.monotonic
    _last: Mapping[str, float] | None = field(default=None, init=False)
    _last_at: float = field(default=0.0, init=False)

    def line(self) -> str | None:
        """The next progress line, or None when nothing moved (or nothing could be read)."""
        try:
            now_values = self.read()
        except (OSError, ValueError, KeyError):
            return None  # not up yet, or going away: the next poll tries again
        now = self.clock()
        if self._last is not None and now_values == self._last:
            return None
        done_before = self._last.get("records_done", 0.0) if self._last else 0.0
        rate = 0.0
        if self._last is not None and now > self._last_at:
            rate = (now_values.get("records_done", 0.0) - done_before) / (now - self._last_at)
        self._last, self._last_at = dict(now_values), now
        return self.describe(now_values, rate)


def supervisor_progress(http_listen: str) -> Progress:
    """Progress of the supervisor serving ``/v1/status`` on ``http_listen``."""
    url = local_url(http_listen, "/v1/status")

    def read() -> dict[str, float]:
        status = fetch_json(url)
        events = status["events"]
        dead = status.get("dead_letters", {}).get("by_kind", {})
        return {
            "records_done": float(events["records_done"]),
            "pending": float(status["pending_records"]),
            "queued": float(status["queued_records"]),
            "inflight": float(status["inflight_tasks"]),
            "redelivered": float(events["redelivered"]),
            "failures": float(sum(events["failures"].values())),
            "dead_lettered": float(sum(dead.values())),
        }

    def describe(v: Mapping[str, float], rate: float) -> str:
        return (
            f"progress: {v['records_done']:.0f} records done ({rate:.0f}/s), "
            f"{v['pending']:.0f} pending ({v['queued']:.0f} waiting for a worker), "
            f"{v['inflight']:.0f} tasks in flight, {v['failures']:.0f} failed attempts, "
            f"{v['redelivered']:.0f} redelivered, {v['dead_lettered']:.0f} dead-lettered here"
        )

    return Progress(read, describe)


def worker_progress(worker_id: str, supervisor_http: str, metrics_listen: str) -> Progress:
    """Progress of worker ``worker_id``: its supervisor's view and its own ``/metrics``."""
    workers_url = local_url(supervisor_http, "/v1/workers")
    metrics_url = local_url(metrics_listen, "/metrics")

    def read() -> dict[str, float]:
        samples = fetch_metrics(metrics_url)
        dead = sum(v for (name, _), v in samples.items() if name == "worker_dead_lettered_total")
        received = samples.get(("worker_records_received_total", ()), 0.0)
        values = {"received": received, "dead_lettered": dead}
        try:
            views = fetch_json(workers_url)["workers"]
        except (OSError, ValueError, KeyError):
            views = []  # between supervisors: the worker's own figures still tell
        mine = [w for w in views if w["id"] == worker_id]
        values["records_done"] = float(sum(w["records_done"] for w in mine)) or received
        values["in_flight"] = float(sum(w["in_flight"] for w in mine))
        values["credit"] = float(sum(w["declared_credit"] for w in mine))
        values["failures"] = float(sum(w["failures"] for w in mine))
        values["connected"] = float(bool(mine))
        return values

    def describe(v: Mapping[str, float], rate: float) -> str:
        link = "" if v["connected"] else " (not connected to the supervisor)"
        return (
            f"progress: {v['records_done']:.0f} records done ({rate:.0f}/s), credit in use "
            f"{v['in_flight']:.0f}/{v['credit']:.0f}, {v['failures']:.0f} failed attempts, "
            f"{v['dead_lettered']:.0f} dead-lettered{link}"
        )

    return Progress(read, describe)
