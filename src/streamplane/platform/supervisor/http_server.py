"""The supervisor's HTTP server settings: bounded connections, deadlines on slow clients.

uvicorn on its own accepts a connection and then waits for its request headers for as
long as the client likes, and reads (and drops) the rest of a body the app answered
without reading: 1,100 half-open requests held 1,100 file descriptors, shared with the
gRPC and Kafka sockets. :class:`GuardedH11Protocol` adds what it lacks:

- a deadline for each request to arrive whole (headers and body), from the moment the
  connection opens or the previous response ends: a client that trickles bytes is cut;
- a hard cap on open connections: one past `MAX_CONNECTIONS` is closed at once;
- a connection whose request body was answered unread is closed, not drained.

uvicorn's own ``limit_concurrency`` answers 503 near the cap, and its keep-alive timeout
closes idle connections between requests.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

#: How long a client has to send a whole request. The routes take small requests (a
#: training request is a few hundred bytes), so 10 s is generous on any network.
REQUEST_TIMEOUT_S = 10.0
#: Open HTTP connections at most. Probes, scrapes and a few operators need a handful;
#: 128 leaves ample room while keeping the supervisor's descriptors for gRPC and Kafka.
MAX_CONNECTIONS = 128
#: Idle keep-alive connections are closed after this.
KEEP_ALIVE_S = 5
#: Request line plus headers at most (h11's default is 16 KiB too; stated here on purpose).
MAX_HEADER_BYTES = 16 * 1024


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request deadline and a connection cap."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Refuse a connection past the cap; else start the clock on its first request."""
        full = len(self.connections) >= MAX_CONNECTIONS
        super().connection_made(transport)
        if full:
            transport.close()
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the deadline with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed h11; once the request is in whole, the deadline no longer applies."""
        super().data_received(data)
        if self.conn.their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED):
            self._disarm()

    def on_response_complete(self) -> None:
        """Close when the body was answered unread; else wait for the next request."""
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            # The app answered without reading the body (a 401, a 413): draining it
            # would let a client stream as much as it likes into a finished request.
            self.transport.close()
            return
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(REQUEST_TIMEOUT_S, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
            self.transport.close()


def server_config(app: Any, host: str, port: int) -> uvicorn.Config:
    """The uvicorn settings of the supervisor's HTTP face."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        http=GuardedH11Protocol,
        timeout_keep_alive=KEEP_ALIVE_S,
        limit_concurrency=MAX_CONNECTIONS,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
    )


def is_loopback(host: str) -> bool:
    """Whether a listen host reaches only this machine (``localhost`` counts)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
