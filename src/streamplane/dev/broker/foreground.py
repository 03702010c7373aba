"""``streamplane broker``: an embedded broker in the foreground until a signal."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from streamplane.dev.broker.process import EmbeddedBroker

__all__ = ["run_broker"]


def run_broker(data_dir: Path, port: int) -> int:
    """Run a broker in the foreground until SIGTERM or SIGINT; the ``streamplane broker`` body.

    Prints exactly one line, ``bootstrap: HOST:PORT``, to stdout once the broker answers,
    then blocks. Returns 0 after a clean stop on a signal, 1 if the broker died on its
    own, and 128 + signal number if a signal arrived before the broker was ready.
    ``data_dir`` may be relative: it is resolved against the working directory once.

    Raises:
        BrokerToolMissing: ``java`` 17+ or ``mvn`` is missing.
        BrokerStartError: the broker could not be started.
    """
    stop_requested = threading.Event()
    received: list[int] = []
    started = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        stop_requested.set()
        if not started:
            # Interrupt start()'s wait; its cleanup stops the half-started JVM.
            raise KeyboardInterrupt

    previous = {
        signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)
    }
    broker = EmbeddedBroker(Path(data_dir).expanduser().absolute(), port=port)
    try:
        try:
            bootstrap = broker.start()
        except KeyboardInterrupt:
            return 128 + (received[0] if received else signal.SIGINT)
        started = True
        print(f"bootstrap: {bootstrap}", flush=True)
        while not stop_requested.wait(timeout=1.0):
            if not broker.is_running:
                print(
                    f"embedded Kafka exited unexpectedly; see {broker.log_file}",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
        return 0
    finally:
        broker.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
