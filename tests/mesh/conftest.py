"""Mesh tests reuse the end-to-end fixtures: process groups with logs, a stack per test."""

from tests.e2e.conftest import procs, pytest_runtest_makereport, stack

__all__ = ["procs", "pytest_runtest_makereport", "stack"]
