"""Keeps the training metrics current while nobody asks for a status.

``supervisor_training_active``, ``supervisor_training_runs_total{state}`` and
``supervisor_training_duration_seconds`` move when a task is refreshed; the status
endpoint refreshes the task it is asked about, and :class:`TrainingMonitor` refreshes
every unfinished task on an interval, in a daemon thread.
"""

from __future__ import annotations

import logging
import threading

from streamplane.rl.exceptions import TrainingError
from streamplane.rl.slurm.runs import TrainingService

logger = logging.getLogger(__name__)

# Slurm's own scheduler ticks about every few seconds; 10 s keeps the gauges fresh
# without loading the controller with queries.
DEFAULT_INTERVAL_S = 10.0


class TrainingMonitor:
    """Refreshes unfinished training tasks every ``interval_s`` seconds."""

    def __init__(self, service: TrainingService, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self._service = service
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (returns at once)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="training-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def tick(self) -> int:
        """One refresh; returns the number of active runs (-1 when it failed)."""
        try:
            return self._service.refresh_active()
        except (TrainingError, OSError) as exc:
            logger.warning("training monitor refresh failed", extra={"error": str(exc)})
            return -1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self._interval)
