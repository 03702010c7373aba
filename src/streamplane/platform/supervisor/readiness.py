"""The supervisor's readiness signal: a small JSON file, written once it serves.

When SUPERVISOR_READY_FILE is set, the supervisor writes ``{"grpc_port": ..,
"http_port": .., "pid": ..}`` there atomically (a temporary file renamed into place)
once its gRPC and HTTP servers listen, so a parent that asked for port 0 learns the
ports without parsing logs. It always prints the human line too,
``supervisor ready grpc=PORT http=PORT``.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from streamplane.exceptions import StreamplaneError

__all__ = ["SupervisorNotReady", "SupervisorReady", "announce", "read_ready", "wait_ready"]


class SupervisorNotReady(StreamplaneError):
    """The supervisor wrote no readiness file in time, or exited before it did."""


@dataclass(frozen=True, slots=True)
class SupervisorReady:
    """What a ready supervisor announces: its bound ports and its process id."""

    grpc_port: int
    http_port: int
    pid: int

    @property
    def grpc_addr(self) -> str:
        """The gRPC address a local worker dials."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        """The base URL of the local HTTP server."""
        return f"http://127.0.0.1:{self.http_port}"

    def line(self) -> str:
        """The line printed for humans."""
        return f"supervisor ready grpc={self.grpc_port} http={self.http_port}"


def announce(path: Path | None, grpc_port: int, http_port: int) -> SupervisorReady:
    """Print the ready line and, with a ``path``, write the readiness file atomically."""
    ready = SupervisorReady(grpc_port, http_port, os.getpid())
    print(ready.line(), flush=True)
    if path is not None:
        path = Path(path).absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(asdict(ready), handle)
            os.replace(staging, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(staging)
            raise
    return ready


def read_ready(path: Path) -> SupervisorReady | None:
    """The readiness file's contents, or None while there is none.

    Raises:
        SupervisorNotReady: the file holds something else than a readiness document.
    """
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(text)
        return SupervisorReady(int(doc["grpc_port"]), int(doc["http_port"]), int(doc["pid"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise SupervisorNotReady(f"{path} is not a readiness file: {text[:200]!r}") from exc


def wait_ready(
    path: Path,
    timeout: float,
    pid: int | None = None,
    alive: Callable[[], bool] = lambda: True,
    interval: float = 0.05,
) -> SupervisorReady:
    """Wait until the supervisor (process ``pid``, when given) has written ``path``.

    A file left by another process (an earlier run on the same path) is ignored.

    Raises:
        SupervisorNotReady: ``alive()`` turned false, or ``timeout`` seconds passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        ready = read_ready(path)
        if ready is not None and (pid is None or ready.pid == pid):
            return ready
        if not alive():
            raise SupervisorNotReady(f"the supervisor exited before it wrote {path}")
        if time.monotonic() >= deadline:
            raise SupervisorNotReady(f"the supervisor wrote no {path} within {timeout:g} s")
        time.sleep(interval)
