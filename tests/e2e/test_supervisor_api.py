"""The supervisor's HTTP face and the standard gRPC health service, on a real broker."""

from __future__ import annotations

import json
import re
import socket
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.deadline import wait_until
from tests.support.procs import Processes, Stack, produce_demo

pytestmark = pytest.mark.kafka


def _health(addr: str, service: str) -> int:
    with grpc.insecure_channel(addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return int(reply.status)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_health_readiness_metrics_and_workers(procs: Processes, stack: Stack) -> None:
    produce_demo(procs, stack, 2_000, 2)
    sup = procs.supervisor(stack.env(MAX_INFLIGHT=3))
    status, body = sup.get("/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    sup.wait_ready(60)
    status, body = sup.get("/readyz")
    assert status == 200, body

    serving = health_pb2.HealthCheckResponse.SERVING
    assert _health(sup.grpc_addr, "") == serving
    assert _health(sup.grpc_addr, "streamplane.runner.v1.Runner") == serving

    worker_metrics = _free_port()
    worker = procs.worker(
        stack.env(
            SUPERVISOR_GRPC_ADDR=sup.grpc_addr,
            MAX_INFLIGHT=3,
            WORKER_METRICS_LISTEN=f"127.0.0.1:{worker_metrics}",
        )
    )
    sup.wait_workers(1)
    wait_until(lambda: sup.records_done() >= 2_000, 60, message=lambda: str(sup.status()))
    [view] = sup.workers()
    assert view["declared_credit"] == 3
    assert view["acks"] >= 1
    assert view["failures"] == 0
    assert 0 <= view["in_flight"] <= 3
    assert view["id"]

    metrics = sup.metrics()
    for name in (
        "supervisor_records_consumed_total",
        "supervisor_records_completed_total",
        "supervisor_tasks_dispatched_total",
        "supervisor_pending_records",
        "supervisor_workers",
        "supervisor_commits_total",
        "supervisor_task_seconds_count",
    ):
        assert name in metrics, name
    assert (sup.metric("supervisor_records_consumed_total") or 0) >= 2_000
    assert (sup.metric("supervisor_task_seconds_count") or 0) >= 1
    # Where latency goes: each stage saw records, aged by their Kafka timestamps.
    for stage in ("consumed", "dispatched", "acked"):
        found = re.search(
            rf'^supervisor_record_age_seconds_count{{stage="{stage}"}} (\S+)$', metrics, re.M
        )
        assert found is not None, stage
        assert float(found.group(1)) >= 1, stage
    url = f"http://127.0.0.1:{worker_metrics}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        worker_text = response.read().decode()
    for stage in ("received", "written"):
        found = re.search(
            rf'^worker_record_age_seconds_count{{stage="{stage}"}} (\S+)$', worker_text, re.M
        )
        assert found is not None, stage
        assert float(found.group(1)) >= 1, stage
    # Labels stay bounded: only the known label names appear on per-tenant series.
    tenant_lines = [
        ln for ln in metrics.splitlines() if ln.startswith("supervisor_tasks_dispatched_total{")
    ]
    assert tenant_lines
    assert all('tenant="' in ln for ln in tenant_lines)

    assert worker.terminate(30) == 0, worker.tail()
    assert sup.terminate(60) == 0, sup.tail()
