"""docker/streaming/healthcheck.py: the probes behind the stack's health checks."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.docker.stack import STREAMING, clean_env

SCRIPT = STREAMING / "healthcheck.py"


def probe(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=60,
    )


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 200 if self.path in {"/readyz", "/server_info"} else 503
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def http_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def grpc_health() -> Iterator[tuple[int, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port, servicer
    finally:
        server.stop(None)


def test_http_healthy_and_not(http_port: int) -> None:
    ok = probe("http", f"http://127.0.0.1:{http_port}/server_info")
    assert ok.returncode == 0, ok.stderr
    bad = probe("http", f"http://127.0.0.1:{http_port}/nope")
    assert bad.returncode == 1
    assert bad.stderr.strip() == f"unhealthy: http://127.0.0.1:{http_port}/nope: HTTP 503"


def test_supervisor_reads_its_port_from_the_listen_variable(http_port: int) -> None:
    ok = probe("supervisor", SUPERVISOR_HTTP_LISTEN=f":{http_port}")
    assert ok.returncode == 0, ok.stderr
    assert f":{http_port}/readyz" in ok.stdout


def test_nothing_listening_is_one_line_and_exit_1() -> None:
    result = probe("supervisor", SUPERVISOR_HTTP_LISTEN=":1")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1


def test_grpc_serving_and_not(grpc_health: tuple[int, health.HealthServicer]) -> None:
    port, servicer = grpc_health
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert probe("grpc", f"127.0.0.1:{port}").returncode == 0
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    result = probe("grpc", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert "NOT_SERVING" in result.stderr


def test_kafka_unreachable_is_unhealthy() -> None:
    result = probe("kafka", KAFKA_BROKERS="127.0.0.1:1")
    assert result.returncode == 1
    assert result.stderr.startswith("unhealthy: 127.0.0.1:1")


def test_kafka_bad_setting_names_the_variable() -> None:
    result = probe("kafka", KAFKA_SECURITY_PROTOCOL="NONSENSE")
    assert result.returncode == 1
    assert "KAFKA_SECURITY_PROTOCOL" in result.stderr


@pytest.mark.kafka
def test_kafka_reachable_is_healthy(kafka_bootstrap: str) -> None:
    result = probe("kafka", KAFKA_BROKERS=kafka_bootstrap)
    assert result.returncode == 0, result.stderr


def test_bad_arguments_exit_2() -> None:
    assert probe("nonsense").returncode == 2
