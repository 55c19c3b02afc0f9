"""Liveness, readiness and metrics (SPEC L3)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from app import metrics
from app.deps import SessionMakerDep, SettingsDep
from app.errors import Unauthorized
from app.jobs.scheduler import leader_elsewhere
from app.services import inbox_signal

router = APIRouter(tags=["operations"])

_READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {"description": "The database is unreachable, or this process's scheduler is not active"}
}


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses=_READY_RESPONSES)
async def readyz(request: Request, maker: SessionMakerDep) -> JSONResponse:
    """The process can reach its database, and the scheduler runs somewhere.

    ``scheduler`` is ``active`` when this process runs the jobs, ``standby`` when it runs a
    scheduler that waits while another process's is active (PostgreSQL), ``elsewhere`` when
    this process runs none and another process's is active, ``none`` when no scheduler is
    active. ``live_updates`` says how notification streams learn of news (``listening``:
    PostgreSQL LISTEN/NOTIFY; ``in-process``: SQLite; ``polling``: the listen connection is
    down, streams look every 2 s). ``none`` makes a process that runs a scheduler unready (it
    should be electing itself); a web worker without one (``KEHU_SCHEDULER_ENABLED=false``)
    stays ready — it can serve — and reports ``none`` for monitoring to alert on."""
    scheduler = getattr(request.app.state, "scheduler", None)
    try:
        async with maker() as session:
            await session.execute(text("SELECT 1"))
            if scheduler is not None and scheduler.is_leader:
                state = "active"
            elif session.get_bind().dialect.name == "postgresql" and await leader_elsewhere(
                session
            ):
                state = "standby" if scheduler is not None else "elsewhere"
            else:
                state = "none"
    except Exception as exc:  # any failure to reach the database means "not ready"
        return JSONResponse(
            {"status": "unavailable", "database": type(exc).__name__}, status_code=503
        )
    ready = state != "none" or scheduler is None
    body = {
        "status": "ok" if ready else "unavailable",
        "database": "ok",
        "scheduler": state,
        "live_updates": inbox_signal.HUB.mode,
    }
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
        401: {"description": "KEHU_METRICS_TOKEN is set and the bearer token is not it"},
    },
)
async def prometheus_metrics(request: Request, settings: SettingsDep) -> Response:
    """Prometheus metrics: request latency by route, scheduler job runs and durations,
    reminders and webhook deliveries by outcome (all worker processes when several run)."""
    token = settings.metrics_token
    if token and request.headers.get("authorization") != f"Bearer {token}":
        raise Unauthorized("metrics need the bearer token of KEHU_METRICS_TOKEN")
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)
