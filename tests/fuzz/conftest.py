"""Fuzzing profile of tests/fuzz: bounded in `make test`, longer on demand.

Every test here takes its settings from the ``fuzz`` profile registered below (as a
decorator, ``settings.get_profile("fuzz")``), so loading this conftest changes no other
test's defaults. By default each test runs few examples, derandomized: the same inputs
on every run, the whole folder in well under two minutes on a 2-core machine.
``FUZZ_EXAMPLES=N`` runs N examples per test (``fuzz-slow`` tests, which start a gRPC
server per example, a fifth of that), with fresh random inputs each time and the example
database on, so a failure found once is replayed first next time::

    FUZZ_EXAMPLES=5000 .venv/bin/pytest tests/fuzz -q
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# The hostile peer's end-to-end test runs real processes with the e2e suite's fixtures.
from tests.e2e.conftest import procs, pytest_runtest_makereport, stack

__all__ = ["EXAMPLES", "procs", "pytest_runtest_makereport", "stack"]

DEFAULT_EXAMPLES = 60
_ON_DEMAND = os.environ.get("FUZZ_EXAMPLES", "").strip()


def _examples() -> int:
    if not _ON_DEMAND:
        return DEFAULT_EXAMPLES
    try:
        examples = int(_ON_DEMAND)
    except ValueError:
        raise ValueError(f"FUZZ_EXAMPLES must be a whole number, got {_ON_DEMAND!r}") from None
    if examples < 1:
        raise ValueError(f"FUZZ_EXAMPLES must be at least 1, got {examples}")
    return examples


EXAMPLES = _examples()

# On demand a run explores: random inputs, failures kept in .hypothesis/ and replayed
# first. In `make test`: the same examples every run, nothing written to disk.
_MODE = settings(derandomize=False) if _ON_DEMAND else settings(derandomize=True, database=None)

_COMMON = settings(
    _MODE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("fuzz", _COMMON, max_examples=EXAMPLES)
settings.register_profile(
    "fuzz-slow", _COMMON, max_examples=max(10, EXAMPLES // 5) if _ON_DEMAND else 150
)
