"""`streamplane dev`: broker, supervisor, workers and a producer as one process tree.

Each part runs as its own `streamplane` subprocess (as in production), so Ctrl-C or
SIGTERM stops all of it: the producer first, the supervisor last; the children drain on
SIGTERM. The supervisor writes its readiness file into the logs folder
(``logs/supervisor.ready``), which says when it serves and on which ports.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from streamplane import processes
from streamplane.dev.broker import EmbeddedBroker, ensure_jars
from streamplane.platform.kafka.admin import ensure_topics

DEV_INPUT = "raw.events.demo"
STOP_TIMEOUT_S = 30.0
READY_FILE = "supervisor.ready"


def run_dev(data_dir: Path, port: int, workers: int, rate: float, bad_fraction: float) -> int:
    """Run the stack until interrupted; returns the exit code.

    ``data_dir`` may be relative: it is resolved against the working directory once.
    """
    data_dir = Path(data_dir).expanduser().absolute()
    data_dir.mkdir(parents=True, exist_ok=True)
    ensure_jars()
    stack = EmbeddedBroker(data_dir / "broker", port=port)
    bootstrap = stack.start()
    logs = data_dir / "logs"
    logs.mkdir(exist_ok=True)
    ready_file = logs / READY_FILE
    ready_file.unlink(missing_ok=True)
    env = {
        **os.environ,
        "KAFKA_BROKERS": bootstrap,
        "SUPERVISOR_LISTEN": "127.0.0.1:7000",
        "SUPERVISOR_GRPC_ADDR": "127.0.0.1:7000",
        "SUPERVISOR_HTTP_LISTEN": "127.0.0.1:8080",
        "SUPERVISOR_READY_FILE": str(ready_file),
    }
    ensure_topics({"bootstrap.servers": bootstrap}, {DEV_INPUT: 6})

    def start(name: str, *args: str) -> None:
        children[name] = processes.spawn(
            processes.streamplane_argv(*args), env=env, output=logs / f"{name}.log", append=True
        )

    children: dict[str, subprocess.Popen[bytes]] = {}
    start("supervisor", "supervisor")
    for i in range(workers):
        start(f"worker-{i}", "worker", "--worker-id", f"dev-worker-{i}")
    start("producer", "produce", "--rate", str(rate), "--bad-fraction", str(bad_fraction))
    print(
        f"streamplane dev is running\n"
        f"  kafka     {bootstrap}  (topics {DEV_INPUT} -> features.events.demo, "
        f"dead letters {DEV_INPUT}.dlq)\n"
        f"  health    http://127.0.0.1:8080/readyz\n"
        f"  metrics   http://127.0.0.1:8080/metrics\n"
        f"  workers   http://127.0.0.1:8080/v1/workers\n"
        f"  logs      {logs}/\n"
        f"Ctrl-C stops everything.",
        flush=True,
    )
    stopping = False

    def stop(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping:
            dead = processes.first_exit(children)
            if dead:
                print(f"{dead[0]} exited with {dead[1]}; stopping", flush=True)
                break
            time.sleep(0.5)
    finally:
        # Producer first so the pipeline drains what was written; supervisor last.
        for child in reversed(list(children.values())):
            processes.stop(child, STOP_TIMEOUT_S)
        stack.stop()
    print("streamplane dev stopped", flush=True)
    return 0
