"""Peak resident memory of the bench's processes, sampled in a thread."""

from __future__ import annotations

import contextlib
import threading
from types import TracebackType

import psutil

__all__ = ["RssSampler"]


class RssSampler:
    """Samples the resident memory of watched processes; keeps the peak per role."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._watched: dict[int, tuple[str, psutil.Process]] = {}
        self._peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-rss", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def watch(self, role: str, pid: int) -> None:
        """Start sampling process `pid` under `role`."""
        with contextlib.suppress(psutil.Error), self._lock:
            self._watched[pid] = (role, psutil.Process(pid))

    def unwatch(self, pid: int) -> None:
        """Stop sampling process `pid`."""
        with self._lock:
            self._watched.pop(pid, None)

    def peak_mb(self, role: str) -> float | None:
        """The highest RSS seen for `role`, in MiB (None if never sampled)."""
        with self._lock:
            peak = self._peaks.get(role)
        return round(peak / 2**20, 1) if peak is not None else None

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                watched = list(self._watched.values())
            for role, process in watched:
                try:
                    rss = process.memory_info().rss
                except psutil.Error:
                    continue  # exited between the list and the sample
                with self._lock:
                    self._peaks[role] = max(self._peaks.get(role, 0), rss)
