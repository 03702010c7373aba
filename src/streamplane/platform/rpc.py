"""What every gRPC endpoint of the plane shares: message bounds, keepalive, servers, backoff.

The supervisor's Runner service, the worker's channel to it, and the MeshData nodes
and clients all build their servers and channels here, so a bound changes in one place.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2_grpc

# A task carries up to BATCH_MAX_BYTES of records (64 MiB at most).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

GrpcOptions = list[tuple[str, int]]

_MESSAGE_BOUNDS: GrpcOptions = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]
# A peer that vanishes without closing (a SIGKILLed host, a cut link) is noticed within
# ~15 s instead of the kernel's TCP timeout of minutes.
_KEEPALIVE: GrpcOptions = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
]
# gRPC's default reconnect backoff grows to 120 s; a node back after a restart should
# be found within a publish retry schedule (seconds), so cap it at 1 s.
_FAST_RECONNECT: GrpcOptions = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
]
# Clients ping every 10 s; allow that, with and without calls in flight.
_SERVER_PINGS: GrpcOptions = [
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


def channel_options(fast_reconnect: bool = False) -> GrpcOptions:
    """Options of a client channel (``fast_reconnect``: cap gRPC's own backoff at 1 s)."""
    return [*_MESSAGE_BOUNDS, *_KEEPALIVE, *(_FAST_RECONNECT if fast_reconnect else [])]


def server_options() -> GrpcOptions:
    """Options of a server."""
    return [*_MESSAGE_BOUNDS, *_KEEPALIVE, *_SERVER_PINGS]


def create_server(
    address: str, add_servicers: Callable[[grpc.aio.Server], None]
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """A server with the caller's servicers and the standard health service, bound.

    Returns the server (not started), the bound port (``address`` may ask for port 0)
    and the health servicer.

    Raises:
        OSError: nothing could bind ``address``.
    """
    server = grpc.aio.server(options=server_options())
    add_servicers(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return server, port, health_servicer


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff: ``first_s`` doubling (by ``factor``) up to ``cap_s``.

    The mesh publisher uses it for a bounded number of ``attempts``; reconnecting
    clients (:class:`Reconnect`) use it without a bound.
    """

    first_s: float = 0.1
    factor: float = 2.0
    cap_s: float = 3.0
    attempts: int = 6

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.first_s < 0 or self.factor < 1 or self.cap_s < 0:
            raise ValueError(f"invalid backoff {self!r}")

    def delay(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th failed attempt (1-based)."""
        return float(min(self.cap_s, self.first_s * self.factor ** (failures - 1)))

    def schedule(self) -> list[float]:
        """Every wait between attempts, in order (one fewer than `attempts`)."""
        return [self.delay(n) for n in range(1, self.attempts)]


class Reconnect:
    """Delays between reconnect attempts: backoff with jitter, reset by a good session.

    Jitter (0.5x to 1.5x) keeps a fleet of workers that lost the same supervisor from
    reconnecting in lockstep.
    """

    def __init__(
        self, first_s: float, cap_s: float, jitter: Callable[[], float] = random.random
    ) -> None:
        self._backoff = Backoff(first_s=first_s, cap_s=cap_s)
        self._jitter = jitter
        self._failures = 0

    def next_delay(self) -> float:
        """The wait before the next attempt; each call counts one more failure."""
        self._failures += 1
        return self._backoff.delay(self._failures) * (0.5 + self._jitter())

    def reset(self) -> None:
        """The last session was good: start from the first delay again."""
        self._failures = 0
