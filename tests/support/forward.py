"""A small TCP forwarder, run as its own process: ``python -m tests.support.forward``.

``--listen HOST --to HOST PORT [PORT ...]`` accepts on ``HOST:PORT`` for each port and
copies bytes both ways to the same port on the ``--to`` host. The network-cut test
runs one inside a network namespace (from the namespace's loopback to the host side
of a veth pair) and one on the host (from that veth address to the host's loopback),
so a worker in the namespace reaches the session broker and the supervisor only over
the veth link, which the test then takes down.

Standard library only; one thread per direction of each connection. It prints one
``forwarding ...`` line once every port listens, then serves until killed.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import threading

# A connect across a cut link must not hang for the kernel's SYN retries (minutes):
# the accepted side is closed instead, and its client retries.
CONNECT_TIMEOUT_S = 3.0
CHUNK = 65536


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy source to sink until EOF or an error; then half-close (or close) the sink."""
    try:
        while True:
            data = source.recv(CHUNK)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _serve_one(client: socket.socket, target: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(target, timeout=CONNECT_TIMEOUT_S)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    for sock in (client, upstream):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _accept_loop(server: socket.socket, target: tuple[str, int]) -> None:
    while True:
        client, _ = server.accept()
        threading.Thread(target=_serve_one, args=(client, target), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.forward")
    parser.add_argument("--listen", required=True, help="address to accept on")
    parser.add_argument("--to", required=True, help="address to forward to")
    parser.add_argument("ports", nargs="+", type=int)
    args = parser.parse_args(argv)
    servers = []
    for port in args.ports:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((args.listen, port))
        server.listen(64)
        servers.append((server, (args.to, port)))
    threads = [threading.Thread(target=_accept_loop, args=pair, daemon=True) for pair in servers]
    for thread in threads:
        thread.start()
    print(f"forwarding {args.listen} -> {args.to} ports {args.ports}", flush=True)
    for thread in threads:
        thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
