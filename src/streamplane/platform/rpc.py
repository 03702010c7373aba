"""What every gRPC endpoint of the plane shares: message bounds, keepalive, servers, backoff.

The supervisor's Runner service, the worker's channel to it, and the MeshData nodes
and clients all build their servers and channels here, so a bound changes in one place.
"""

from __future__ import annotations

import hmac
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2_grpc

from streamplane.config import RpcSecuritySettings
from streamplane.platform import metrics as m

logger = logging.getLogger(__name__)

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


AUTHORIZATION = "authorization"
# Health checks come from probes (kubelet, compose) that hold no token; they learn
# nothing but SERVING or NOT_SERVING.
_OPEN_PREFIX = "/grpc.health.v1.Health/"


@dataclass(frozen=True, slots=True)
class Security:
    """Credentials of one process's gRPC servers and channels (see RpcSecuritySettings).

    ``token``: the shared bearer token, sent by clients and required by servers.
    ``cert``/``key``: this process's PEM identity (a server's, or a client's under
    mutual TLS). ``ca``: PEM roots that verify the peer; a server with it requires
    client certificates. All unset: plaintext without authentication, as before.
    """

    token: str | None = None
    cert: bytes | None = None
    key: bytes | None = None
    ca: bytes | None = None

    @classmethod
    def of(cls, settings: RpcSecuritySettings) -> Security:
        """Read the configured token and PEM files (their paths checked at start)."""

        def read(path: Path | None) -> bytes | None:
            return path.read_bytes() if path is not None else None

        token = settings.grpc_auth_token
        return cls(
            token.get_secret_value() if token is not None else None,
            read(settings.grpc_tls_cert_file),
            read(settings.grpc_tls_key_file),
            read(settings.grpc_tls_ca_file),
        )

    def server_credentials(self) -> grpc.ServerCredentials | None:
        """TLS credentials of a server, or None for plaintext."""
        if self.cert is None or self.key is None:
            return None
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)],
            root_certificates=self.ca,
            require_client_auth=self.ca is not None,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """TLS credentials of a channel, or None for plaintext (no CA configured)."""
        if self.ca is None:
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )

    def call_metadata(self) -> tuple[tuple[str, str], ...] | None:
        """Metadata every call sends: the bearer token, when one is configured."""
        if self.token is None:
            return None
        return ((AUTHORIZATION, f"Bearer {self.token}"),)


def authorized(metadata: Sequence[tuple[str, str | bytes]] | None, token: str) -> bool:
    """Whether the call's metadata carries ``Bearer <token>`` (compared in constant time)."""
    expected = f"Bearer {token}".encode()
    for key, value in metadata or ():
        if key == AUTHORIZATION:
            given = value if isinstance(value, bytes) else value.encode("utf-8", "replace")
            return hmac.compare_digest(given, expected)
    return False


class _TokenCheck(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses every call without the bearer token before its handler runs."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method: str = details.method
        if handler is None or method.startswith(_OPEN_PREFIX):
            return handler
        if authorized(details.invocation_metadata, self._token):
            return handler
        m.RPC_REFUSED.labels(method.rsplit("/", 1)[-1]).inc()
        logger.warning("gRPC call refused: missing or wrong bearer token", extra={"method": method})
        return _refusal(handler)


async def _refuse(_request: Any, context: grpc.aio.ServicerContext) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")


def _refusal(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that answers UNAUTHENTICATED."""
    shape = (handler.request_streaming, handler.response_streaming)
    build = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[shape]
    return build(
        _refuse,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def channel(target: str, options: GrpcOptions, security: Security) -> grpc.aio.Channel:
    """A client channel: TLS when the security has a CA, plaintext otherwise."""
    credentials = security.channel_credentials()
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, credentials, options=options)


def create_server(
    address: str,
    add_servicers: Callable[[grpc.aio.Server], None],
    security: Security | None = None,
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """A server with the caller's servicers and the standard health service, bound.

    Returns the server (not started), the bound port (``address`` may ask for port 0)
    and the health servicer. With ``security``, calls need its token and the port
    speaks TLS (mutual when it has a CA).

    Raises:
        OSError: nothing could bind ``address``.
    """
    security = security or Security()
    interceptors = [_TokenCheck(security.token)] if security.token else []
    server = grpc.aio.server(options=server_options(), interceptors=interceptors)
    add_servicers(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    credentials = security.server_credentials()
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
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
