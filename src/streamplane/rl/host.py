"""RL as a supervisor extension: the training API, its monitor and the replay buffer.

The supervisor knows no application; the composition root (``streamplane supervisor``)
passes an :class:`RLExtension` to it. The training API (``/training/rl/start``,
``/training/rl/status/<task>``) is always served (it answers 503 until
TRAINING_API_TOKEN and RL_BUFFER_DIR are set). Its monitor thread runs only where there
are training tasks to follow (RL_TRAINING_DIR, or RL_BUFFER_DIR to default it from),
and the replay buffer consumer only when RL_RESULTS_TOPIC and RL_BUFFER_DIR are both
set, as the seed describes: a supervisor without RL configured starts no RL thread.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import APIRouter

from streamplane.config import Settings
from streamplane.rl.api import create_training_router
from streamplane.rl.slurm.monitor import TrainingMonitor
from streamplane.rl.slurm.runs import TrainingService

if TYPE_CHECKING:
    from streamplane.rl.buffer.service import BufferService

logger = logging.getLogger(__name__)


class RLExtension:
    """Builds the training router; starts and stops the monitor and the buffer.

    Implements :class:`~streamplane.platform.supervisor.extensions.SupervisorExtension`.
    """

    name = "rl"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._training = settings.rl
        self._service = TrainingService(self._training)
        self._monitor: TrainingMonitor | None = None
        if self._training.rl_training_dir is not None or self._training.rl_buffer_dir is not None:
            self._monitor = TrainingMonitor(self._service)
        self._buffer: BufferService | None = None
        if settings.rl.rl_results_topic and settings.rl.rl_buffer_dir:
            # Imported only when used: the buffer brings pyarrow (~50 MB resident).
            from streamplane.rl.buffer.service import BufferService

            self._buffer = BufferService(settings, self._training)

    @property
    def monitoring(self) -> bool:
        """Whether training tasks are followed in the background (RL folders are set)."""
        return self._monitor is not None

    def router(self) -> APIRouter:
        """The /training/rl routes."""
        return create_training_router(
            self._settings, training=self._training, service=self._service
        )

    def start(self) -> None:
        """Start the status monitor and the replay buffer, each where it is configured."""
        if self._monitor is not None:
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
        if self._monitor is not None:
            self._monitor.stop()

    def problem(self) -> str | None:
        """Why the buffer is not healthy, or None."""
        if self._buffer is not None and self._buffer.error is not None:
            return f"buffer failed: {self._buffer.error}"
        return None
