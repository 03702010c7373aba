"""Errors raised by ``streamplane.rl``: buffer, checkpoints, Slurm, rollouts.

Foreign failures (``subprocess`` errors from the Slurm commands, ``OSError`` from the
file system, pyarrow's errors) are translated where they happen and chained with
``raise ... from exc``. Transient failures (Slurm's controller unreachable) derive from
:class:`~streamplane.exceptions.TransientError`, the rest from
:class:`~streamplane.exceptions.PermanentError`.
"""

from __future__ import annotations

from streamplane.exceptions import PermanentError, StreamplaneError, TransientError


class TrainingError(StreamplaneError):
    """Base class of every error raised by ``streamplane.rl``."""


class RolloutRequestError(TrainingError, PermanentError):
    """A rollout request is not valid (bad JSON, unknown env, missing policy version).

    The env runner sends such a record to the dead-letter topic with this message.
    """


class CheckpointError(TrainingError, PermanentError):
    """A policy checkpoint is missing, unreadable or does not fit the environment."""


class ReplayBufferError(TrainingError):
    """The replay buffer could not be read or written."""


class BufferLocked(ReplayBufferError, TransientError):
    """Another process holds the buffer directory; only one writer may own it."""


class BufferCorrupt(ReplayBufferError, PermanentError):
    """The buffer's manifest or a shard it lists cannot be read."""


class SlurmError(TrainingError):
    """A Slurm command failed."""


class SlurmUnavailable(SlurmError, TransientError):
    """Slurm cannot be reached: its commands are missing or its controller does not answer.

    Nothing was submitted when a submission raises this.
    """


class SlurmSubmitError(SlurmError, PermanentError):
    """sbatch refused the job for a reason retrying will not fix (bad resources, say)."""


class JobNotFound(SlurmError, PermanentError):
    """Slurm knows no job with this id (never submitted, or forgotten after MinJobAge)."""


class TrainingTaskNotFound(TrainingError, PermanentError):
    """No training task with this id was recorded."""
