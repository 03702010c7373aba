"""The training API, as a FastAPI router the supervisor's HTTP app includes.

``POST /training/rl/start`` (bearer token) validates a :class:`TrainingRequest`, submits
the trainer to Slurm and answers 202 with the task id and the Slurm job id;
``GET /training/rl/status/{task}`` answers with the state, timings, metrics once done and
the tail of the job's log. Slurm unreachable gives 503 with the reason (and nothing was
submitted); a job sbatch refuses (more CPUs than any node has, say) gives 422; no
RL_BUFFER_DIR (nowhere to train from) gives 503 naming the variable.

Every route needs the token (a status shows the job's log), and it is checked before a
byte of the body is read: an unauthenticated client cannot make the supervisor buffer
its upload. Bodies are capped at `MAX_BODY_BYTES` (413), and NaN or Infinity anywhere in
one is a 422.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError

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
# A training request is a few hundred bytes of JSON; 64 KiB leaves room for any future
# field and keeps what one request can make the supervisor hold small.
MAX_BODY_BYTES = 64 * 1024
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

_Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class ErrorDetail(BaseModel):
    """The body of a refusal: what was wrong, in words."""

    detail: str


class ValidationIssue(BaseModel):
    """One problem pydantic found in a request (FastAPI's validation error item)."""

    loc: list[str | int]
    msg: str
    type: str


class Unprocessable(BaseModel):
    """The body of a 422: the request's validation issues, or a refusal in words.

    Words for a request that is well-formed but cannot be run: an env not on the
    allowlist, a job sbatch refuses, a number that is not finite.
    """

    detail: list[ValidationIssue] | str


def _answer(description: str) -> dict[str, Any]:
    return {"model": ErrorDetail, "description": description}


# What every route may answer besides its own result, documented in the OpenAPI.
_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: _answer("The body cannot be read as JSON text, or Content-Length is no number"),
    401: _answer("No bearer token, or not the one configured"),
    413: _answer(f"The body is larger than {MAX_BODY_BYTES} bytes"),
    422: {"model": Unprocessable, "description": "Invalid, or valid but not runnable"},
    502: _answer("Slurm answered something that could not be understood"),
    503: _answer(f"{TOKEN_VARIABLE} or RL_BUFFER_DIR is not set, or Slurm is unreachable"),
}


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

    def check(given: str | None) -> None:
        if not token:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"the training API is disabled: {TOKEN_VARIABLE} is not set",
            )
        if given is None or not secrets.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a valid bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def authorize(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        # The guard below has checked already; this one documents the scheme in OpenAPI.
        check(credentials.credentials if credentials is not None else None)

    router = APIRouter(
        prefix="/training/rl",
        tags=["training"],
        dependencies=[Depends(authorize)],
        route_class=_guarded_route(check),
        responses=_REFUSALS,
    )

    @router.post("/start", status_code=status.HTTP_202_ACCEPTED)
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

    @router.get("/status/{task_id}", responses={404: _answer("No training task of that id")})
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


def _guarded_route(check: Callable[[str | None], None]) -> type[APIRoute]:
    """A route class that checks the token, then reads a bounded, finite body.

    FastAPI reads and parses the body before it resolves dependencies, so a dependency
    alone checks the token only after the whole upload is in memory; this runs first.
    """

    class GuardedRoute(APIRoute):
        def get_route_handler(self) -> _Handler:
            handler = super().get_route_handler()
            model = _body_model(self)

            async def guarded(request: Request) -> Response:
                check(_bearer_token(request.headers.get("authorization")))
                body = b""
                if request.method in _BODY_METHODS:
                    body = await _read_capped(request)
                    _refuse_non_finite(body)
                    request._body = body  # what FastAPI's handler reads: already in hand
                try:
                    if model is not None and body:
                        _validate_strictly(model, body)
                    return await handler(request)
                except RequestValidationError as exc:
                    # The default handler renders the input back; NaN there made it a 500.
                    detail = _finite(jsonable_encoder(exc.errors()))
                    return JSONResponse({"detail": detail}, status_code=422)

            return guarded

    return GuardedRoute


def _body_model(route: APIRoute) -> type[BaseModel] | None:
    """The pydantic model of the route's JSON body, if it takes one."""
    field = route.body_field
    annotation = field.field_info.annotation if field is not None else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _validate_strictly(model: type[BaseModel], body: bytes) -> None:
    """422 unless `body` is the model's JSON as its schema says: no coercion.

    FastAPI validates in pydantic's lax mode, where ``false`` and ``"5"`` pass for the
    integer 0 and 5: a request the OpenAPI schema calls invalid would be obeyed. Strict
    JSON validation still takes 2 for a float. Bodies that are no JSON at all are left
    to FastAPI, which says so.
    """
    try:
        json.loads(body)
    except ValueError:
        return
    try:
        model.model_validate_json(body, strict=True)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from exc


def _bearer_token(header: str | None) -> str | None:
    scheme, _, credentials = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not credentials:
        return None
    return credentials


async def _read_capped(request: Request) -> bytes:
    """The body, refused with 413 as soon as it is known to pass `MAX_BODY_BYTES`."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "bad Content-Length")
        if int(declared) > MAX_BODY_BYTES:
            raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large() -> HTTPException:
    return HTTPException(413, f"the body is limited to {MAX_BODY_BYTES} bytes")


class _NonFinite(ValueError):
    """A JSON number that is NaN or infinite."""


def _refuse_non_finite(body: bytes) -> None:
    """422 for NaN, Infinity or a number too large for a float, anywhere in a JSON body."""

    def constant(name: str) -> float:
        raise _NonFinite(name)

    def number(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise _NonFinite(text)
        return value

    try:
        json.loads(body, parse_constant=constant, parse_float=number)
    except _NonFinite as exc:
        raise HTTPException(
            422,  # Unprocessable Content
            f"numbers must be finite, got {str(exc)[:32]}",
        ) from exc
    except ValueError:
        return  # not JSON: FastAPI's own parse says so (422)


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its name, so it renders as JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
