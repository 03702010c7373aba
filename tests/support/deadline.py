"""Bounded waiting, shared with the project: :mod:`streamplane.testing.deadline`."""

from streamplane.testing.deadline import wait_until

__all__ = ["wait_until"]
