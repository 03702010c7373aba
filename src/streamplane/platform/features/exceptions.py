"""Errors of the feature transform.

Bad records are not errors here: they come back as data, in `FeatureBatch.errors`, so one
poison record never fails its batch. These exceptions are for the engine itself.
"""

from __future__ import annotations

from streamplane.exceptions import ConfigError, StreamplaneError


class FeatureError(StreamplaneError):
    """Base class of the feature transform's errors."""


class EngineUnavailable(FeatureError, ConfigError):
    """The requested engine cannot run in this process.

    Raised by `get_engine` when the engine's library is missing or fails to load (cuDF
    without a GPU install, say), and by `load_engine` when it loads but cannot compute
    (no usable GPU). It is a configuration error of the setting that chose the engine
    (``WORKER_ENGINE`` for a worker), so the command exits with status 2; the message is
    one line that says what is missing and how to fix it.
    """

    def __init__(self, setting: str, engine: str, missing: str) -> None:
        reason = (
            f"the {engine} engine cannot run here: {missing}; install streamplane with the "
            "`gpu` extra (CUDA 12) or the `gpu-cu13` extra (CUDA 13) on a machine with an "
            f"NVIDIA GPU, or set {setting}=polars"
        )
        super().__init__(setting, reason)
        self.engine = engine
        self.missing = missing
