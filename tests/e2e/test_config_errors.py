"""A bad setting stops `streamplane supervisor` / `worker` at once: status 2, variable named.

No broker is needed: configuration is checked before anything connects.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.procs import processes

CASES = [
    ("worker", "MAX_INFLIGHT", "0"),
    ("worker", "MAX_INFLIGHT", "many"),
    ("supervisor", "KAFKA_BROKERS", "not a broker list"),
    ("worker", "KAFKA_BROKERS", "not a broker list"),
    ("supervisor", "ORDERING", "sideways"),
    ("supervisor", "MAX_ATTEMPTS", "0"),
    ("supervisor", "SUPERVISOR_LISTEN", "nowhere"),
]


@pytest.mark.parametrize(("command", "variable", "value"), CASES)
def test_bad_setting_exits_2_naming_the_variable(
    tmp_path: Path, command: str, variable: str, value: str
) -> None:
    # A listen address nobody can reach and a broker nobody runs: if the check were
    # missing, the process would hang on the network instead of failing fast.
    env = {
        "KAFKA_BROKERS": "127.0.0.1:1",
        "SUPERVISOR_GRPC_ADDR": "127.0.0.1:1",
        "SUPERVISOR_LISTEN": "127.0.0.1:0",
        "SUPERVISOR_HTTP_LISTEN": "127.0.0.1:0",
        variable: value,
    }
    with processes(tmp_path) as group:
        proc = group.run(command, [command], env, timeout=30)
    assert proc.returncode == 2, proc.tail()
    stderr = proc.stderr()
    assert variable in stderr, stderr
    assert "Traceback" not in stderr, stderr
    assert not proc.stdout().strip(), proc.stdout()


def test_bad_flag_value_exits_2_naming_the_variable(tmp_path: Path) -> None:
    """The same check applies to a flag: the message names the variable, not the flag."""
    env = {"KAFKA_BROKERS": "127.0.0.1:1"}
    with processes(tmp_path) as group:
        proc = group.run("supervisor", ["supervisor", "--ordering=sideways"], env, timeout=30)
    assert proc.returncode == 2, proc.tail()
    assert "ORDERING" in proc.stderr(), proc.stderr()
