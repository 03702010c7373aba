"""Container health checks of the streaming stack, with nothing but the image's Python.

The slim image has no curl or grpc_health_probe, so compose's ``healthcheck`` runs this:

    healthcheck.py supervisor      GET /readyz on the port of SUPERVISOR_HTTP_LISTEN
    healthcheck.py worker          the supervisor (SUPERVISOR_GRPC_ADDR's host, the port of
                                   SUPERVISOR_HTTP_LISTEN) lists a session of this
                                   worker (WORKER_ID, else an id "<hostname>-<pid>")
    healthcheck.py http URL        any 2xx answer from URL
    healthcheck.py grpc HOST:PORT  grpc.health.v1 says SERVING (service "" by default)
    healthcheck.py kafka           the Kafka at KAFKA_BROKERS answers a metadata request,
                                   through the same client settings streamplane uses
    healthcheck.py idle            sleep until stopped (a container that only checks)

Exit 0 when healthy, 1 with one line on stderr when not, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

# Docker's own `healthcheck.timeout` bounds the whole check; these keep one probe
# well under the 10 s used in compose.yaml, so a hung peer reads as unhealthy, not stuck.
PROBE_TIMEOUT_S = 5.0


class Unhealthy(Exception):
    """The probed service answered badly or not at all."""


def check_http(url: str) -> str:
    """GET ``url``; a 2xx answer is healthy."""
    if not url.startswith(("http://", "https://")):
        raise Unhealthy(f"not an http(s) URL: {url!r}")
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as reply:  # noqa: S310
            return f"{url}: HTTP {reply.status}"
    except urllib.error.HTTPError as exc:
        raise Unhealthy(f"{url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise Unhealthy(f"{url}: {getattr(exc, 'reason', exc)}") from exc


def check_supervisor() -> str:
    """The supervisor's /readyz on the port its SUPERVISOR_HTTP_LISTEN names."""
    return check_http(f"http://127.0.0.1:{_http_port()}/readyz")


def _http_port() -> int:
    """The port of SUPERVISOR_HTTP_LISTEN (default :8080)."""
    from streamplane.config import parse_listen

    listen = os.environ.get("SUPERVISOR_HTTP_LISTEN") or ":8080"
    try:
        _, port = parse_listen(listen)
    except ValueError as exc:
        raise Unhealthy(f"SUPERVISOR_HTTP_LISTEN: {exc}") from exc
    return port


def check_worker() -> str:
    """The supervisor lists a session of this worker in its /v1/workers."""
    address = os.environ.get("SUPERVISOR_GRPC_ADDR") or "supervisor:7000"
    host = address.rsplit(":", 1)[0].removeprefix("http://").removeprefix("https://") or "127.0.0.1"
    url = f"http://{host}:{_http_port()}/v1/workers"
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as reply:
            workers = json.load(reply).get("workers", [])
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise Unhealthy(f"{url}: {getattr(exc, 'reason', exc)}") from exc
    wanted = os.environ.get("WORKER_ID")
    prefix = f"{socket.gethostname()}-"
    ids = [str(w.get("id", "")) for w in workers if isinstance(w, dict)]
    mine = [i for i in ids if (i == wanted if wanted else i.startswith(prefix))]
    if not mine:
        raise Unhealthy(f"{url}: no session of {wanted or prefix + '<pid>'} among {len(ids)}")
    return f"{url}: session of {mine[0]}"


def check_grpc(address: str, service: str) -> str:
    """Ask the standard gRPC health service at ``address`` about ``service``."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=PROBE_TIMEOUT_S
            )
        except grpc.RpcError as exc:
            raise Unhealthy(f"{address}: {exc.code().name}") from exc
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise Unhealthy(f"{address}: {status}")
    return f"{address}: {status}"


def check_kafka() -> str:
    """One metadata request to KAFKA_BROKERS with streamplane's own client settings."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from streamplane.config import load_settings
    from streamplane.exceptions import ConfigError

    try:
        settings = load_settings()
    except ConfigError as exc:
        raise Unhealthy(str(exc)) from exc
    # The Kafka section of the settings (older layouts kept it on the root object).
    kafka: Any = getattr(settings, "kafka", settings)
    brokers = kafka.kafka_brokers
    conf: dict[str, str | int | float | bool] = {**kafka.as_librdkafka_dict()}
    conf["log_level"] = 0  # librdkafka's own connect errors: the one line below says it
    client = AdminClient(conf)
    try:
        meta = client.list_topics(timeout=PROBE_TIMEOUT_S)
    except KafkaException as exc:
        error = exc.args[0]
        reason = error.str() if hasattr(error, "str") else str(error)
        raise Unhealthy(f"{brokers}: {reason}") from exc
    return f"{brokers}: {len(meta.brokers)} broker(s)"


def idle() -> int:
    """Sleep until SIGTERM or SIGINT, then exit 0."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(0))
    while True:
        signal.pause()


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line: one probe per call."""
    parser = argparse.ArgumentParser(prog="healthcheck.py", description=__doc__.splitlines()[0])
    probes = parser.add_subparsers(dest="probe", required=True)
    probes.add_parser("supervisor", help="GET /readyz on SUPERVISOR_HTTP_LISTEN's port")
    probes.add_parser("worker", help="the supervisor's /v1/workers lists this worker")
    http = probes.add_parser("http", help="any 2xx answer from URL")
    http.add_argument("url")
    grpc_probe = probes.add_parser("grpc", help="grpc.health.v1 Check says SERVING")
    grpc_probe.add_argument("address", help="HOST:PORT")
    grpc_probe.add_argument("--service", default="", help="service name ('' = the server)")
    probes.add_parser("kafka", help="KAFKA_BROKERS answers, with streamplane's settings")
    probes.add_parser("idle", help="sleep until stopped")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one probe; print one line; 0 healthy, 1 not."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.probe == "idle":
        return idle()
    try:
        if args.probe == "supervisor":
            line = check_supervisor()
        elif args.probe == "worker":
            line = check_worker()
        elif args.probe == "http":
            line = check_http(args.url)
        elif args.probe == "grpc":
            line = check_grpc(args.address, args.service)
        else:
            line = check_kafka()
    except Unhealthy as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    print(f"healthy: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
