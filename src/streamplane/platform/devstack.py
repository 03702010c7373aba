"""`streamplane dev`: broker, supervisor, workers and a producer as one process tree.

Each part runs as its own `streamplane` subprocess (as in production), in one process
group, so Ctrl-C or SIGTERM stops all of it; the children drain on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from streamplane.platform.kafka.admin import ensure_topics
from streamplane.platform.kafka.broker import EmbeddedBroker, ensure_jars

DEV_INPUT = "raw.events.demo"
STOP_TIMEOUT_S = 30.0


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "streamplane.cli", *args],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )


def run_dev(data_dir: Path, port: int, workers: int, rate: float, bad_fraction: float) -> int:
    """Run the stack until interrupted; returns the exit code."""
    data_dir.mkdir(parents=True, exist_ok=True)
    ensure_jars()
    stack = EmbeddedBroker(data_dir / "broker", port=port)
    bootstrap = stack.start()
    env = {
        **os.environ,
        "KAFKA_BROKERS": bootstrap,
        "SUPERVISOR_LISTEN": "127.0.0.1:7000",
        "SUPERVISOR_GRPC_ADDR": "127.0.0.1:7000",
        "SUPERVISOR_HTTP_LISTEN": "127.0.0.1:8080",
    }
    ensure_topics({"bootstrap.servers": bootstrap}, {DEV_INPUT: 6})
    logs = data_dir / "logs"
    logs.mkdir(exist_ok=True)
    children = {"supervisor": _spawn(["supervisor"], env, logs / "supervisor.log")}
    for i in range(workers):
        args = ["worker", "--worker-id", f"dev-worker-{i}"]
        children[f"worker-{i}"] = _spawn(args, env, logs / f"worker-{i}.log")
    produce = ["produce", "--rate", str(rate), "--bad-fraction", str(bad_fraction)]
    children["producer"] = _spawn(produce, env, logs / "producer.log")
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
            dead = [(n, c) for n, c in children.items() if c.poll() is not None]
            if dead:
                name, child = dead[0]
                print(f"{name} exited with {child.returncode}; stopping", flush=True)
                break
            time.sleep(0.5)
    finally:
        # Producer first so the pipeline drains what was written; supervisor last.
        for child in reversed(list(children.values())):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
            try:
                child.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.kill()
        stack.stop()
    print("streamplane dev stopped", flush=True)
    return 0
