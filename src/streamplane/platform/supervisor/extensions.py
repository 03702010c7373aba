"""What an application adds to a supervisor: HTTP routes and a background service.

The supervisor knows no application. The composition root (``streamplane.cli``, or a
user's own entry point) builds extensions and passes them to
:class:`~streamplane.platform.supervisor.app.Supervisor`; the supervisor serves their
routers beside its own, starts them once it serves, reports their health in
``/readyz``, and stops them during its drain.
"""

from __future__ import annotations

from typing import Protocol

from fastapi import APIRouter


class SupervisorExtension(Protocol):
    """One application hosted by a supervisor (the RL replay buffer and API, say)."""

    name: str

    def router(self) -> APIRouter | None:
        """Routes to serve on the supervisor's HTTP port, or None."""

    def start(self) -> None:
        """Start background work; called once the supervisor serves. Must not block."""

    def stop(self, timeout: float) -> None:
        """Flush and stop within ``timeout`` seconds; called from a worker thread."""

    def problem(self) -> str | None:
        """Why this extension is unhealthy (the supervisor is then not ready), or None."""
