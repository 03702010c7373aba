"""Who may take work from the supervisor: a bearer token, TLS, mutual TLS (issue 12.1).

Without credentials a peer is refused before its first message is read: it gets no
task, so it cannot ack records away unwritten, and the supervisor commits nothing for
it. Health checks stay open (probes hold no token).
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e.test_protocol import RawSession, credit, hello
from tests.support.audit import assert_committed_at_end, audit_topics
from tests.support.certs import Authority
from tests.support.deadline import wait_until
from tests.support.procs import Processes, Stack, produce_demo

pytestmark = pytest.mark.kafka

TOKEN = "s3cret-token-for-the-runner-port"
PASSTHROUGH = {"WORKER_PROCESSOR": "tests.support.processors:passthrough"}


def _health(address: str, credentials: grpc.ChannelCredentials | None = None) -> int:
    channel = (
        grpc.insecure_channel(address)
        if credentials is None
        else grpc.secure_channel(address, credentials)
    )
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        status: int = answer.status
        return status


def _finish(procs: Processes, stack: Stack, sup_env: dict[str, str], count: int) -> None:
    """A worker with the right credentials moves everything, once."""
    ends = stack.end_offsets()
    procs.worker(stack.env(**sup_env, **PASSTHROUGH), name="trusted")
    stack.wait_committed_at_end(60, ends)
    assert_committed_at_end(stack.committed(), ends)
    audit = audit_topics(stack.bootstrap, stack.topics.input, stack.topics.output, stack.topics.dlq)
    assert not audit.lost, audit.summary()
    assert audit.duplicates == 0, audit.summary()
    assert len(audit.outputs) == count, audit.summary()


def test_a_peer_without_the_token_gets_no_task_and_commits_nothing(
    procs: Processes, stack: Stack
) -> None:
    count = 2_000
    produce_demo(procs, stack, count, partitions=2)
    sup = procs.supervisor(stack.env(GRPC_AUTH_TOKEN=TOKEN, BATCH_MAX_RECORDS=100))
    assert _health(sup.grpc_addr) == health_pb2.HealthCheckResponse.SERVING

    # The rogue of issue 12.1: Hello, credit, then it would ack everything unwritten.
    rogue = RawSession(sup.grpc_addr, lambda m: m.SerializeToString())
    try:
        rogue.send(hello())
        rogue.send(credit(8))
        assert rogue.ended.wait(15), "a stream without the token stayed open"
        assert rogue.error is not None
        assert rogue.error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert rogue.received == []
    finally:
        rogue.close()

    # A real worker with the wrong token is refused the same way, and keeps retrying.
    wrong = procs.worker(
        stack.env(SUPERVISOR_GRPC_ADDR=sup.grpc_addr, GRPC_AUTH_TOKEN="x" * 32, **PASSTHROUGH),
        name="wrong",
    )
    wait_until(lambda: "UNAUTHENTICATED" in wrong.log(), 30, message=wrong.tail)
    assert "welcomed" not in wrong.log()
    assert sup.workers() == []
    assert not any(stack.committed().values()), "committed past records nobody wrote"
    wait_until(
        lambda: (sup.metric('grpc_calls_refused_total{method="Connect"}') or 0) >= 2,
        10,
        message=lambda: sup.stderr()[-2000:],
    )
    assert TOKEN not in sup.log()
    assert "x" * 32 not in sup.log()
    wrong.terminate(timeout=30)

    _finish(procs, stack, {"SUPERVISOR_GRPC_ADDR": sup.grpc_addr, "GRPC_AUTH_TOKEN": TOKEN}, count)
    assert sup.terminate(timeout=60) == 0, sup.tail()


def test_mutual_tls_admits_only_workers_with_a_certificate_of_the_ca(
    procs: Processes, stack: Stack, tmp_path: Path
) -> None:
    count = 2_000
    produce_demo(procs, stack, count, partitions=2)
    ca = Authority(tmp_path / "pki")
    server, client = ca.issue("supervisor"), ca.issue("worker")
    stranger = Authority(tmp_path / "other", name="another CA").issue("stranger")
    sup = procs.supervisor(
        stack.env(
            GRPC_TLS_CERT_FILE=str(server.cert),
            GRPC_TLS_KEY_FILE=str(server.key),
            GRPC_TLS_CA_FILE=str(ca.ca),
        )
    )
    trusted = {"SUPERVISOR_GRPC_ADDR": sup.grpc_addr, "GRPC_TLS_CA_FILE": str(ca.ca)}

    # Plaintext, TLS without a client certificate, and a certificate of another CA: all
    # fail the handshake, so no Hello is ever read.
    refused = [
        procs.worker(stack.env(SUPERVISOR_GRPC_ADDR=sup.grpc_addr, **PASSTHROUGH), name="plain"),
        procs.worker(stack.env(**trusted, **PASSTHROUGH), name="no-cert"),
        procs.worker(
            stack.env(
                **trusted,
                GRPC_TLS_CERT_FILE=str(stranger.cert),
                GRPC_TLS_KEY_FILE=str(stranger.key),
                **PASSTHROUGH,
            ),
            name="stranger",
        ),
    ]
    wait_until(
        lambda: all(w.log().count("stream ended") >= 2 for w in refused),
        30,
        message=lambda: "\n".join(w.tail() for w in refused),
    )
    assert all("welcomed" not in w.log() for w in refused)
    assert sup.workers() == []
    assert not any(stack.committed().values()), "committed past records nobody wrote"
    for worker in refused:
        worker.terminate(timeout=30)

    # Under mutual TLS every call needs a client certificate, health checks included.
    mtls = grpc.ssl_channel_credentials(
        ca.ca.read_bytes(), client.key.read_bytes(), client.cert.read_bytes()
    )
    assert _health(sup.grpc_addr, mtls) == health_pb2.HealthCheckResponse.SERVING

    _finish(
        procs,
        stack,
        {**trusted, "GRPC_TLS_CERT_FILE": str(client.cert), "GRPC_TLS_KEY_FILE": str(client.key)},
        count,
    )
    assert sup.terminate(timeout=60) == 0, sup.tail()
