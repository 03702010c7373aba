"""The shared process fleet (:mod:`streamplane.testing.procs`), with this repo on PYTHONPATH.

Children of a test can load the test processors (``tests.support.processors``) because
REPO_ROOT goes in front of their PYTHONPATH.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from streamplane.processes import free_port
from streamplane.testing import procs as shared
from streamplane.testing.procs import LOG_TAIL_CHARS, Proc, SupervisorProc
from streamplane.testing.stack import Stack, produce_demo

__all__ = [
    "LOG_TAIL_CHARS",
    "REPO_ROOT",
    "Proc",
    "Processes",
    "Stack",
    "SupervisorProc",
    "base_env",
    "free_port",
    "processes",
    "produce_demo",
]

REPO_ROOT = Path(__file__).resolve().parents[2]


def base_env(extra: Mapping[str, str | int | float]) -> dict[str, str]:
    """The runner's environment without streamplane settings, plus `extra`, repo on the path."""
    return shared.base_env(extra, pythonpath=[REPO_ROOT])


class Processes(shared.Processes):
    """The shared fleet, with REPO_ROOT on its children's PYTHONPATH."""

    def __init__(self, log_dir: Path, pythonpath: Sequence[Path] = (REPO_ROOT,)) -> None:
        super().__init__(log_dir, pythonpath)


@contextlib.contextmanager
def processes(log_dir: Path) -> Iterator[Processes]:
    """A `Processes` group that is always stopped on exit, even on failure."""
    group = Processes(log_dir)
    try:
        yield group
    finally:
        group.stop_all()
