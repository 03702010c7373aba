"""The supervisor's HTTP face: health, readiness, metrics and the worker list.

Later features (the RL training API) add routers to the app this module builds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel

from streamplane.platform.supervisor.dispatcher import Dispatcher


class WorkerView(BaseModel):
    """One connected worker session, as /v1/workers shows it."""

    id: str
    session: str
    declared_credit: int
    available_credit: int
    in_flight: int
    acks: int
    failures: int
    records_done: int


class Readiness(BaseModel):
    """The body of GET /readyz: 200 when ready, else 503 with the reason."""

    status: str
    reason: str | None = None


class WorkersResponse(BaseModel):
    """The body of GET /v1/workers."""

    workers: list[WorkerView]


def worker_views(dispatcher: Dispatcher) -> list[WorkerView]:
    """A snapshot of the connected workers."""
    return [
        WorkerView(
            id=w.worker_id,
            session=w.session,
            declared_credit=w.max_inflight,
            available_credit=w.available,
            in_flight=sum(1 for wire, t in w.inflight.items() if t.wire_id == wire),
            acks=w.acks,
            failures=w.failures,
            records_done=w.records_done,
        )
        for w in dispatcher.workers.values()
    ]


def create_app(
    dispatcher: Dispatcher,
    readiness: Callable[[], str | None],
    status: Callable[[], dict[str, Any]],
    *,
    docs: bool = False,
) -> FastAPI:
    """Build the app; `readiness` returns None when ready, else the reason it is not.

    ``docs`` serves /docs, /redoc and /openapi.json; off unless asked for, since they
    describe every route to whoever can reach the port.
    """
    app = FastAPI(
        title="streamplane supervisor",
        version="1",
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "Not ready, with the reason"}},
    )
    def readyz() -> JSONResponse:
        reason = readiness()
        if reason is None:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {
                "description": "Prometheus text exposition",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/workers")
    def workers() -> WorkersResponse:
        return WorkersResponse(workers=worker_views(dispatcher))

    @app.get("/v1/status")
    def supervisor_status() -> dict[str, Any]:
        return status()

    return app
