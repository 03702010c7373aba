"""Reuse the end-to-end process fixtures (``procs``, ``stack``) of tests/e2e."""

from tests.e2e.conftest import procs, pytest_runtest_makereport, stack

__all__ = ["procs", "pytest_runtest_makereport", "stack"]
