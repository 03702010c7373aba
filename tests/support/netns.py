"""A network namespace joined to this one by a veth pair, for network-cut tests.

:func:`veth_namespace` creates a namespace and a veth pair whose two ends get the two
host addresses of a private /30 (10.213.x.y, chosen free of this machine's routes);
the addresses exist only in this machine's own namespaces, and nothing here sends
traffic anywhere else. Whatever happens, the namespace and the pair are deleted on
exit. :func:`start_in` starts a command inside the namespace as a member of a test's
:class:`~tests.support.procs.Processes` group (logs, report and stop included), and
:func:`forwarders` bridges the namespace's loopback ports to the host's loopback over
the veth link (see :mod:`tests.support.forward`), so cutting the link cuts them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from streamplane import processes as children
from tests.support.procs import Proc, Processes, base_env


def unavailable() -> str | None:
    """Why namespaces cannot be made here (not root, no ``ip``), or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (run the tests as root)"
    if shutil.which("ip") is None:
        return "the `ip` command is missing (install iproute2)"
    return None


def _ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    argv = ["ip", *args] if netns is None else ["ip", "netns", "exec", netns, "ip", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _used_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Every address and route destination of this namespace, as networks."""
    nets = []
    for line in _ip("-4", "-o", "addr").splitlines():
        words = line.split()
        if "inet" in words:
            nets.append(ipaddress.ip_network(words[words.index("inet") + 1], strict=False))
    for line in _ip("-4", "route", "show", "table", "all").splitlines():
        for word in line.split()[:2]:  # "10.0.0.0/8 dev ..." or "local 10.0.0.1 dev ..."
            with contextlib.suppress(ValueError):
                nets.append(ipaddress.ip_network(word, strict=False))
    return nets


def _free_subnet() -> ipaddress.IPv4Network:
    """A /30 in 10.213.0.0/16 that overlaps no address or route of this namespace."""
    used = _used_networks()
    rng = random.Random()
    for _ in range(100):
        net = ipaddress.IPv4Network(f"10.213.{rng.randrange(256)}.{rng.randrange(64) * 4}/30")
        if not any(net.overlaps(other) for other in used if other.version == 4):
            return net
    raise RuntimeError("no free /30 in 10.213.0.0/16")


@dataclass(frozen=True)
class Namespace:
    """A namespace and the veth pair joining it to the test's namespace."""

    name: str
    host_if: str
    ns_if: str
    host_addr: str
    ns_addr: str

    def argv(self, command: Sequence[str]) -> list[str]:
        """``command`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *command]

    def cut(self) -> None:
        """Take the host end of the veth pair down: nothing crosses until `mend`."""
        _ip("link", "set", self.host_if, "down")

    def mend(self) -> None:
        """Bring the host end back up."""
        _ip("link", "set", self.host_if, "up")

    def link_state(self) -> str:
        """The host end's `ip -br link` line (for messages)."""
        return _ip("-br", "link", "show", self.host_if, check=False).strip()


@contextlib.contextmanager
def veth_namespace() -> Iterator[Namespace]:
    """A fresh namespace with a veth pair on a private /30; both removed on exit."""
    tag = uuid.uuid4().hex[:6]
    net = _free_subnet()
    host_addr, ns_addr = (str(a) for a in net.hosts())
    ns = Namespace(f"sp-cut-{tag}", f"spc{tag}h", f"spc{tag}n", host_addr, ns_addr)
    try:
        _ip("netns", "add", ns.name)
        _ip("link", "add", ns.host_if, "type", "veth", "peer", "name", ns.ns_if)
        _ip("link", "set", ns.ns_if, "netns", ns.name)
        _ip("addr", "add", f"{host_addr}/30", "dev", ns.host_if)
        _ip("link", "set", ns.host_if, "up")
        _ip("addr", "add", f"{ns_addr}/30", "dev", ns.ns_if, netns=ns.name)
        _ip("link", "set", ns.ns_if, "up", netns=ns.name)
        _ip("link", "set", "lo", "up", netns=ns.name)
        yield ns
    finally:
        # Deleting one end deletes the pair; the namespace goes once nothing runs in it
        # (callers stop what they started inside first).
        _ip("link", "del", ns.host_if, check=False)
        _ip("netns", "del", ns.name, check=False)


def start_in(
    group: Processes,
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str | int | float],
    ns: Namespace | None,
) -> Proc:
    """Start ``argv`` (inside ``ns`` when given) as a member of ``group``.

    ``ip netns exec`` execs the command in place, so the Proc's pid is the command's and
    signals reach it directly; the group stops it at teardown like any other.
    """
    folder = group.log_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    full_env = base_env(env)
    args = list(argv) if ns is None else ns.argv(argv)
    out, err = folder / "stdout.log", folder / "stderr.log"
    popen = children.spawn(args, env=full_env, output=out, errors=err, cwd=folder)
    proc = Proc(name, args, popen, out, err, full_env)
    group.procs.append(proc)
    return proc


def worker_in(
    group: Processes, ns: Namespace, env: Mapping[str, str | int | float], name: str
) -> Proc:
    """A ``streamplane worker`` inside ``ns`` (same defaults as ``Processes.worker``)."""
    full: dict[str, str | int | float] = {"RECONNECT_MAX_BACKOFF_S": "1", "WORKER_ID": name}
    full.update(env)
    return start_in(group, name, children.streamplane_argv("worker"), full, ns)


def forwarders(group: Processes, ns: Namespace, ports: Sequence[int]) -> list[Proc]:
    """Bridge ``127.0.0.1:PORT`` inside ``ns`` to ``127.0.0.1:PORT`` here, over the veth.

    Inside: from the namespace's loopback to the host end's address; here: from that
    address to this loopback. A client in the namespace dials the same addresses as
    one here (the broker advertises 127.0.0.1), and every byte crosses the veth link.
    """
    module = [sys.executable, "-m", "tests.support.forward"]
    numbers = [str(p) for p in ports]
    env: dict[str, str] = {}  # base_env puts the repository on PYTHONPATH
    outer = start_in(
        group,
        "forward-host",
        [*module, "--listen", ns.host_addr, "--to", "127.0.0.1", *numbers],
        env,
        None,
    )
    inner = start_in(
        group,
        "forward-netns",
        [*module, "--listen", "127.0.0.1", "--to", ns.host_addr, *numbers],
        env,
        ns,
    )
    for proc in (outer, inner):
        proc.wait_log("forwarding", timeout=30)
    return [outer, inner]
