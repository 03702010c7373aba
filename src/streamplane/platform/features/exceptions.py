"""Errors of the feature transform.

Bad records are not errors here: they come back as data, in `FeatureBatch.errors`, so one
poison record never fails its batch. These exceptions are for the engine itself.
"""

from __future__ import annotations

from streamplane.exceptions import StreamplaneError


class FeatureError(StreamplaneError):
    """Base class of the feature transform's errors."""


class EngineUnavailable(FeatureError):
    """The requested engine cannot run in this process.

    Raised by `get_engine` when the engine's library is missing or fails to load (cuDF
    without a GPU install, say); the message says which extra to install.
    """
