"""The supervisor's real HTTP server against slow, idle and oversized clients.

The server is the one `Supervisor._http_server` builds, run in a thread on port 0, with
its deadline and connection cap made small so the test is quick. Waits are bounded
socket reads, never timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from streamplane.config import Settings, SupervisorSettings, parse_listen
from streamplane.platform.supervisor import http_server
from streamplane.platform.supervisor.app import Supervisor

from .factories import FakeClock, FakeDeadLetters, make_dispatcher

CAP = 8
PARTIAL = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: "
WAIT_S = 30.0


def _supervisor(listen: str) -> Supervisor:
    supervisor = Supervisor(Settings(supervisor_http_listen=listen))
    supervisor.dispatcher = make_dispatcher(FakeClock(), FakeDeadLetters())
    return supervisor


@contextlib.contextmanager
def _serving(listen: str) -> Iterator[int]:
    """The supervisor's HTTP server on `listen` (port 0) in a thread; yields its port."""
    server = _supervisor(listen)._http_server()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),))
    thread.start()
    try:
        pause = threading.Event()
        while not server.started and thread.is_alive():
            pause.wait(0.01)
        assert server.started
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        loop.close()


@pytest.fixture
def port(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setattr(http_server, "REQUEST_TIMEOUT_S", 1.0)
    monkeypatch.setattr(http_server, "MAX_CONNECTIONS", CAP)
    with _serving("127.0.0.1:0") as bound:
        yield bound


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=WAIT_S) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _closed_by_server(sock: socket.socket) -> bytes:
    """Read until the server closes the connection; returns what it sent before."""
    sock.settimeout(WAIT_S)
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except ConnectionResetError:
        pass
    return got


def test_idle_and_slow_connections_are_closed_and_capped(port: int) -> None:
    assert _get(port, "/healthz") == 200
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(CAP)]
    try:
        for sock in idle[: CAP // 2]:
            sock.sendall(PARTIAL)  # half a request, never finished
        # Past the cap a connection is closed at once, before it can ask for anything.
        with socket.create_connection(("127.0.0.1", port)) as extra:
            assert _closed_by_server(extra) == b""
        # The held ones run out of time, said something or not.
        for sock in idle:
            assert _closed_by_server(sock) == b""
    finally:
        for sock in idle:
            sock.close()
    assert _get(port, "/healthz") == 200


def test_a_body_answered_unread_closes_the_connection(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /healthz HTTP/1.1\r\nHost: test\r\nContent-Length: 300000000\r\n\r\n")
        answer = _closed_by_server(sock)
    assert answer.startswith(b"HTTP/1.1 405 "), answer[:100]


def test_oversized_headers_are_refused(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 100_000)
        answer = _closed_by_server(sock)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:100]


def test_http_defaults_to_loopback() -> None:
    # The field's default: a local docker/streaming/.env (made by `make streaming-up`)
    # would set its own value in Settings().
    host, _ = parse_listen(SupervisorSettings.model_fields["supervisor_http_listen"].default)
    assert host == "127.0.0.1"


@pytest.mark.parametrize(("host", "served"), [("127.0.0.1", True), ("0.0.0.0", False)])
def test_api_docs_only_on_loopback(host: str, served: bool) -> None:
    with _serving(f"{host}:0") as bound:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert _get(bound, path) == (200 if served else 404), path
        assert _get(bound, "/healthz") == 200


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("example", False),
    ],
)
def test_which_hosts_are_loopback(host: str, loopback: bool) -> None:
    assert http_server.is_loopback(host) is loopback
