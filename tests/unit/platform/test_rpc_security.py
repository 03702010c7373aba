"""The gRPC token check and credentials of `platform.rpc` (the wiring is tested end to end
in tests/e2e/test_grpc_auth.py and tests/unit/platform/mesh/test_node.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr

from streamplane.config import RpcSecuritySettings
from streamplane.exceptions import ConfigError
from streamplane.platform import rpc
from tests.support.certs import Authority

TOKEN = "a-token-of-enough-length"


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ((("authorization", f"Bearer {TOKEN}"),), True),
        ((("authorization", f"Bearer {TOKEN}".encode()),), True),
        ((("x-other", "1"), ("authorization", f"Bearer {TOKEN}")), True),
        ((("authorization", f"Bearer {TOKEN}x"),), False),
        ((("authorization", TOKEN),), False),
        ((("authorization", "Bearer "),), False),
        ((("authorization", b"\xff\xfe"),), False),
        ((), False),
        (None, False),
    ],
)
def test_authorized_takes_exactly_the_bearer_token(
    metadata: tuple[tuple[str, str | bytes], ...] | None, expected: bool
) -> None:
    assert rpc.authorized(metadata, TOKEN) is expected


def test_security_without_settings_is_plaintext_and_sends_nothing() -> None:
    security = rpc.Security.of(RpcSecuritySettings(_env_file=None))  # type: ignore[call-arg]
    assert security == rpc.Security()
    assert security.server_credentials() is None
    assert security.channel_credentials() is None
    assert security.call_metadata() is None


def test_security_reads_the_token_and_the_pem_files(tmp_path: Path) -> None:
    ca = Authority(tmp_path)
    leaf = ca.issue("node")
    settings = RpcSecuritySettings(  # type: ignore[call-arg]
        _env_file=None,
        grpc_auth_token=SecretStr(TOKEN),
        grpc_tls_cert_file=leaf.cert,
        grpc_tls_key_file=leaf.key,
        grpc_tls_ca_file=ca.ca,
    )
    security = rpc.Security.of(settings)
    assert security.call_metadata() == (("authorization", f"Bearer {TOKEN}"),)
    assert security.cert == leaf.cert.read_bytes()
    assert security.server_credentials() is not None
    assert security.channel_credentials() is not None
    assert TOKEN not in repr(settings)


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"grpc_auth_token": "short"}, "GRPC_AUTH_TOKEN"),
        ({"grpc_auth_token": "has a space in it, sixteen+"}, "GRPC_AUTH_TOKEN"),
        ({"grpc_tls_cert_file": "/no/such/cert.pem"}, "GRPC_TLS_CERT_FILE"),
    ],
)
def test_bad_security_settings_fail_naming_the_variable(
    values: dict[str, str], variable: str
) -> None:
    from streamplane.config.base import build

    with pytest.raises(ConfigError) as caught:
        build(RpcSecuritySettings, values, env_file=None)
    assert caught.value.variable == variable
    assert values.get("grpc_auth_token", "\0") not in str(caught.value)


def test_a_certificate_without_its_key_fails_at_start(tmp_path: Path) -> None:
    from streamplane.config.base import build

    leaf = Authority(tmp_path).issue("node")
    with pytest.raises(ConfigError) as caught:
        build(RpcSecuritySettings, {"grpc_tls_cert_file": str(leaf.cert)}, env_file=None)
    assert caught.value.variable == "GRPC_TLS_KEY_FILE"


def test_health_checks_stay_open_behind_a_token() -> None:
    async def main() -> None:
        server, port, health = rpc.create_server(
            "127.0.0.1:0", lambda _server: None, rpc.Security(token=TOKEN)
        )
        await server.start()
        try:
            await health.set("", health_pb2.HealthCheckResponse.SERVING)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                answer = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
                assert answer.status == health_pb2.HealthCheckResponse.SERVING
        finally:
            await server.stop(0)

    asyncio.run(main())
