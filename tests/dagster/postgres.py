"""A throwaway PostgreSQL cluster for one test session (Debian's postgresql package).

``initdb`` refuses to run as root, so under root the cluster belongs to the ``postgres``
user the package creates (the processes run as that user; this process stays root and
only owns the test). The cluster lives in a fresh folder under the system temp dir (the
pytest folders are private to their owner), listens on 127.0.0.1 on a free port with
password authentication, and is stopped and deleted at the end. Nothing of the machine's
own PostgreSQL service is touched.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.procs import free_port

INSTALL_HINT = "PostgreSQL server binaries (Debian: apt-get install postgresql)"


@dataclass(frozen=True)
class PostgresCluster:
    """Where to reach the cluster: what DAGSTER_PG_* variables carry."""

    host: str
    port: int
    user: str
    password: str
    database: str

    def env(self) -> dict[str, str]:
        """The DAGSTER_PG_* variables of docker/dagster/dagster.yaml."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USERNAME": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.database,
        }


def find_bin_dir() -> Path | None:
    """The newest PostgreSQL version's bin folder holding initdb and pg_ctl, if any."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(on_path)
    for initdb in candidates:
        folder = Path(initdb).parent
        if (folder / "pg_ctl").exists():
            return folder
    return None


def _owner() -> str | None:
    """The user the server runs as: ``postgres`` under root, else this process's user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    return "postgres"


def can_run_as_root() -> bool:
    """Whether a cluster can be started here (as root, it needs the postgres user)."""
    return os.geteuid() != 0 or _owner() is not None


def _run(args: list[str], user: str | None, timeout: float = 120) -> None:
    result = subprocess.run(
        args, user=user, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stderr[-2000:]}")


@contextlib.contextmanager
def throwaway_cluster(bin_dir: Path) -> Iterator[PostgresCluster]:
    """Create, start, yield, stop and delete a cluster with a ``dagster`` database."""
    user = _owner()
    folder = Path(tempfile.mkdtemp(prefix="streamplane-pg-"))
    data, socket_dir, log = folder / "data", folder / "socket", folder / "server.log"
    socket_dir.mkdir()
    password_file = folder / "password"
    password = "dagster-test-password"
    password_file.write_text(password)
    if user is not None:
        info = pwd.getpwnam(user)
        for path in (folder, socket_dir, password_file):
            os.chown(path, info.pw_uid, info.pw_gid)
    port = free_port()
    ctl = str(bin_dir / "pg_ctl")
    try:
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "dagster",
                "--auth=scram-sha-256",
                f"--pwfile={password_file}",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            user,
        )
        options = f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        _run([ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start"], user)
        cluster = PostgresCluster("127.0.0.1", port, "dagster", password, "dagster")
        _create_database(cluster)
        yield cluster
    finally:
        if (data / "postmaster.pid").exists():
            _run([ctl, "-D", str(data), "-m", "fast", "-w", "stop"], user)
        shutil.rmtree(folder, ignore_errors=True)


def _create_database(cluster: PostgresCluster) -> None:
    """CREATE DATABASE over a real connection (psycopg2 comes with dagster-postgres)."""
    import psycopg2

    connection = psycopg2.connect(
        host=cluster.host,
        port=cluster.port,
        user=cluster.user,
        password=cluster.password,
        dbname="postgres",
    )
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {cluster.database}")
    finally:
        connection.close()
