"""The training API, as a FastAPI router the supervisor's HTTP app includes.

``POST /training/rl/start`` (bearer token) validates a :class:`TrainingRequest`, submits
the trainer to Slurm and answers 202 with the task id and the Slurm job id;
``GET /training/rl/status/{task}`` answers with the state, timings, metrics once done and
the tail of the job's log. Slurm unreachable gives 503 with the reason (and nothing was
submitted); a job sbatch refuses (more CPUs than any node has, say) gives 422; no
RL_BUFFER_DIR (nowhere to train from) gives 503 naming the variable.
"""

from __future__ import annotations

import logging
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from streamplane.config import RLSettings, Settings
from streamplane.exceptions import ConfigError
from streamplane.rl.exceptions import (
    SlurmError,
    SlurmSubmitError,
    SlurmUnavailable,
    TrainingError,
    TrainingTaskNotFound,
)
from streamplane.rl.slurm.jobs import JobState
from streamplane.rl.slurm.runs import TrainingService
from streamplane.rl.slurm.schema import StartResponse, TrainingRequest, TrainingStatus

logger = logging.getLogger(__name__)

TOKEN_VARIABLE = "TRAINING_API_TOKEN"  # noqa: S105 - a variable name, not a secret
_bearer = HTTPBearer(auto_error=False, description=f"the value of {TOKEN_VARIABLE}")


def create_training_router(
    settings: Settings,
    *,
    training: RLSettings | None = None,
    service: TrainingService | None = None,
    token: str | None = None,
) -> APIRouter:
    """Build the router.

    Args:
        settings: The supervisor's settings (RL_BUFFER_DIR and RL_RESULTS_TOPIC).
        training: RL settings; read from the environment when not given.
        service: The training service (tests pass one with a fake Slurm); by default one
            over the real Slurm commands.
        token: The bearer token; default ``TRAINING_API_TOKEN``. With none configured,
            starting a run answers 503.
    """
    training = training if training is not None else settings.rl
    runs = service if service is not None else TrainingService(training)
    if token is None and training.training_api_token is not None:
        token = training.training_api_token.get_secret_value()
    router = APIRouter(prefix="/training/rl", tags=["training"])

    def authorize(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if not token:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"the training API is disabled: {TOKEN_VARIABLE} is not set",
            )
        given = credentials.credentials if credentials is not None else ""
        if credentials is None or not secrets.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a valid bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )

    @router.post(
        "/start",
        status_code=status.HTTP_202_ACCEPTED,
        dependencies=[Depends(authorize)],
    )
    def start(request: TrainingRequest) -> StartResponse:
        """Submit the trainer to Slurm."""
        try:
            record = runs.submit(request)
        except (SlurmUnavailable, ConfigError) as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
        except (SlurmSubmitError, TrainingError) as exc:
            raise HTTPException(422, str(exc)) from exc  # Unprocessable Content
        except SlurmError as exc:
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from exc
        assert record.job_id is not None
        return StartResponse(
            task_id=record.task_id,
            job_id=record.job_id,
            state=JobState(record.state),
            status_url=f"/training/rl/status/{record.task_id}",
        )

    @router.get("/status/{task_id}")
    def task_status(task_id: str) -> TrainingStatus:
        """State, timings, metrics and log tail of a training task."""
        try:
            return runs.status(task_id)
        except TrainingTaskNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
        except (SlurmUnavailable, ConfigError) as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
        except SlurmError as exc:
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from exc

    return router
