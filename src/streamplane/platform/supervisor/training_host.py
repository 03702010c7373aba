"""The RL pieces a supervisor hosts beside dispatch.

The training API (`/training/rl/start`, `/training/rl/status/<task>`) and its monitor are
always served (starting a run answers 503 until TRAINING_API_TOKEN and RL_BUFFER_DIR
are set); the replay buffer consumer runs when RL_RESULTS_TOPIC and RL_BUFFER_DIR are
both set, as the seed describes.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import APIRouter

from streamplane.config import Settings
from streamplane.platform.training.api import create_training_router
from streamplane.platform.training.monitor import TrainingMonitor
from streamplane.platform.training.runs import TrainingService

if TYPE_CHECKING:
    from streamplane.platform.training.buffer_service import BufferService

logger = logging.getLogger(__name__)


class TrainingHost:
    """Builds the training router; starts and stops the monitor and the buffer."""

    name = "rl"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._training = settings.rl
        self._service = TrainingService(self._training)
        self._monitor = TrainingMonitor(self._service)
        self._buffer: BufferService | None = None
        if settings.rl.rl_results_topic and settings.rl.rl_buffer_dir:
            # Imported only when used: the buffer brings pyarrow (~50 MB resident).
            from streamplane.platform.training.buffer_service import BufferService

            self._buffer = BufferService(settings, self._training)

    def router(self) -> APIRouter:
        """The /training/rl routes."""
        return create_training_router(
            self._settings, training=self._training, service=self._service
        )

    def start(self) -> None:
        """Start the status monitor and, when configured, the replay buffer."""
        self._monitor.start()
        if self._buffer is not None:
            self._buffer.start()
            logger.info(
                "rl buffer started",
                extra={
                    "topic": self._settings.rl.rl_results_topic,
                    "dir": self._settings.rl.rl_buffer_dir,
                },
            )

    def stop(self, timeout: float = 30.0) -> None:
        """Flush and commit the buffer, stop the monitor."""
        if self._buffer is not None:
            self._buffer.stop(timeout=timeout)
        self._monitor.stop()

    def problem(self) -> str | None:
        """Why the buffer is not healthy, or None."""
        if self._buffer is not None and self._buffer.error is not None:
            return f"buffer failed: {self._buffer.error}"
        return None
