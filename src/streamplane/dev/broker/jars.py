"""The embedded broker's jars: Apache Kafka from Maven Central, cached per pom.

No Kafka broker ships on PyPI, so the jars come from Maven Central through ``pom.xml``
beside this module and run on the local JDK (17+). :func:`ensure_jars` fetches them once
into a cache (``$STREAMPLANE_CACHE_DIR`` or ``~/.cache/streamplane``); :func:`find_java`
and :func:`find_maven` name what to install when a tool is missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from streamplane.platform.kafka.exceptions import BrokerError, BrokerStartError, BrokerToolMissing

__all__ = [
    "MIN_JAVA_MAJOR",
    "POM_PATH",
    "default_cache_dir",
    "ensure_jars",
    "find_java",
    "find_maven",
    "kafka_version",
    "tail_text",
]

logger = logging.getLogger(__name__)

POM_PATH = Path(__file__).with_name("pom.xml")
"""The pom whose runtime dependencies are the broker's classpath."""

MIN_JAVA_MAJOR = 17
"""Kafka 4 brokers require Java 17 (KIP-750)."""

_JAVA_HINT = "install a JDK 17+ (Debian: apt-get install openjdk-17-jre-headless)"
_MAVEN_HINT = "install Apache Maven to fetch the Kafka jars (Debian: apt-get install maven)"

# Maven resolves ~40 jars (~35 MB) on first use; a slow mirror can take minutes, but an
# hour means something is stuck and the user should see an error rather than a hang.
_MAVEN_TIMEOUT_S = 3600.0

# A download killed with SIGKILL leaves its staging folder behind; one older than this
# cannot belong to a download still running, so it is swept on the next call.
_STALE_STAGING_S = 2 * _MAVEN_TIMEOUT_S

# Inside the jar folder: the SHA-256 of the pom the jars were resolved from. A dot file,
# so the `libs/*` classpath wildcard (which only matches *.jar) never sees it.
_POM_STAMP = ".pom-sha256"


def kafka_version() -> str:
    """Return the Kafka version the pom pins (its ``kafka.version`` property)."""
    # A regex rather than an XML parser: the pom is ours and the property is one line,
    # and it keeps an XML parser (and its entity-expansion risks) out of the import path.
    match = re.search(r"<kafka\.version>\s*([^<\s]+)\s*</kafka\.version>", POM_PATH.read_text())
    if match is None:
        raise BrokerError(f"{POM_PATH} has no <kafka.version> property")
    return match.group(1)


def default_cache_dir() -> Path:
    """Return the jar cache root: ``$STREAMPLANE_CACHE_DIR`` or ``~/.cache/streamplane``."""
    configured = os.environ.get("STREAMPLANE_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "streamplane"


def find_java() -> str:
    """Return the path of a ``java`` 17+ on ``PATH``.

    Raises:
        BrokerToolMissing: no ``java`` on ``PATH``, or one older than 17.
    """
    java = shutil.which("java")
    if java is None:
        raise BrokerToolMissing("java", f"java not found: {_JAVA_HINT}")
    try:
        # `java -version` prints to stderr; `-XshowSettings` is not needed for the number.
        probe = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerToolMissing("java", f"{java} -version failed ({exc}): {_JAVA_HINT}") from exc
    major = _java_major(probe.stderr + probe.stdout)
    if major is None:
        raise BrokerToolMissing("java", f"{java} -version printed no version: {_JAVA_HINT}")
    if major < MIN_JAVA_MAJOR:
        raise BrokerToolMissing(
            "java", f"java {major} at {java} is too old for Kafka 4: {_JAVA_HINT}"
        )
    return java


def _java_major(version_output: str) -> int | None:
    """Parse the major version from ``java -version`` output (``"1.8.0"`` counts as 8)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:  # Java 8 and older: "1.8.0_392".
        major = int(match.group(2))
    return major


def find_maven() -> str:
    """Return the path of ``mvn`` on ``PATH``.

    Raises:
        BrokerToolMissing: no ``mvn`` on ``PATH``.
    """
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerToolMissing("mvn", f"mvn not found: {_MAVEN_HINT}")
    return mvn


def ensure_jars(cache_dir: Path | None = None) -> Path:
    """Return a folder holding the broker's jars, fetching them with Maven if missing.

    The jars land in ``<cache_dir>/kafka-<version>/libs`` (``cache_dir`` defaults to
    :func:`default_cache_dir`). Maven writes into a staging folder that is renamed into
    place only once complete, so a killed download never leaves a half-filled cache, and
    two processes fetching at once both end up with a complete folder. The folder holds
    the SHA-256 of the pom it came from; when the pom changes (a dependency added, say)
    the jars are fetched again and replace the old ones.

    Raises:
        BrokerToolMissing: the jars are missing and ``java`` 17+ or ``mvn`` is too.
        BrokerStartError: Maven failed; the message carries the tail of its output.
    """
    root = cache_dir if cache_dir is not None else default_cache_dir()
    home = root.expanduser().absolute() / f"kafka-{kafka_version()}"
    libs = home / "libs"
    pom_digest = hashlib.sha256(POM_PATH.read_bytes()).hexdigest()
    if _stamp(libs) == pom_digest:
        return libs

    # Maven runs on Java too, so a missing JDK is reported as such rather than as an
    # obscure Maven failure.
    find_java()
    mvn = find_maven()
    home.mkdir(parents=True, exist_ok=True)
    _sweep_stale_staging(home)
    staging = Path(tempfile.mkdtemp(prefix="libs.partial-", dir=home))
    try:
        # Maven runs on a copy of the pom so that nothing (target/, say) is written next
        # to the installed package, which may be read-only.
        pom = staging / "pom.xml"
        shutil.copyfile(POM_PATH, pom)
        fetched = staging / "libs"
        command = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={fetched}",
            "-DincludeScope=runtime",
        ]
        logger.info("fetching Kafka jars", extra={"command": command, "into": str(libs)})
        started = time.monotonic()
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=_MAVEN_TIMEOUT_S,
                check=False,
                cwd=staging,
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerStartError(
                f"mvn did not finish fetching the Kafka jars within {_MAVEN_TIMEOUT_S:.0f} s"
            ) from exc
        if result.returncode != 0:
            raise BrokerStartError(
                f"mvn failed to fetch the Kafka jars (exit {result.returncode}):\n"
                + tail_text(result.stdout + result.stderr)
            )
        if not any(fetched.glob("*.jar")):
            raise BrokerStartError(f"mvn succeeded but copied no jars into {fetched}")
        (fetched / _POM_STAMP).write_text(pom_digest + "\n")
        if libs.exists():
            # Jars from another pom: move them aside (into staging, removed below) so the
            # rename can put the new folder in their place.
            with contextlib.suppress(OSError):
                libs.rename(staging / "retired")
        try:
            fetched.rename(libs)
        except OSError:
            # Another process finished first; its folder is as good as ours.
            if _stamp(libs) != pom_digest:
                raise
        logger.info(
            "fetched Kafka jars",
            extra={"into": str(libs), "seconds": round(time.monotonic() - started, 1)},
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return libs


def _stamp(libs: Path) -> str | None:
    """Return the pom digest a jar folder was fetched for, or None if there is none."""
    try:
        return (libs / _POM_STAMP).read_text().strip()
    except OSError:
        return None


def _sweep_stale_staging(home: Path) -> None:
    """Remove staging folders left by downloads that were killed long ago."""
    now = time.time()
    for leftover in home.glob("libs.partial-*"):
        with contextlib.suppress(OSError):
            if now - leftover.stat().st_mtime > _STALE_STAGING_S:
                shutil.rmtree(leftover, ignore_errors=True)


def tail_text(text: str, lines: int = 40) -> str:
    """Return the last ``lines`` lines of ``text`` (a tool's output, for an error)."""
    return "\n".join(text.rstrip().splitlines()[-lines:])
