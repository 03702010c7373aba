"""The bench's one error."""

from streamplane.exceptions import StreamplaneError

__all__ = ["BenchError"]


class BenchError(StreamplaneError):
    """The bench could not finish: a process died, a run stalled, data went missing."""
