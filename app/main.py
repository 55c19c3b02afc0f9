"""The application factory: routers, problem-details handlers, middleware, lifespan, the SPA."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from app.config import Settings, get_settings
from app.db import create_engine, create_sessionmaker, database_unavailable
from app.deps import api_guard
from app.errors import (
    PROBLEM_MEDIA_TYPE,
    PROBLEM_SCHEMA,
    DomainError,
    ServiceUnavailable,
    problem_for_status,
)
from app.jobs.scheduler import KehuScheduler
from app.logs import configure_logging
from app.middleware import BodySizeLimitMiddleware, IdempotencyMiddleware, RequestLogMiddleware
from app.routers import (
    activities,
    analytics,
    auth,
    config,
    contacts,
    contracts,
    customers,
    dashboard,
    exports,
    funnel,
    health,
    imports,
    lifecycle,
    notifications,
    opportunities,
    orders,
    org,
    pools,
    tag_rules,
    today,
)
from app.routers import (
    api_keys as api_keys_router,
)
from app.routers import webhooks as webhooks_router
from app.security import TokenSettings
from app.services import api_keys, inbox_signal, rate_limits
from app.services.analytics.frames import AnalyticsStore
from app.services.auth import ensure_secret_key
from app.services.notifications import vapid_keys

log = logging.getLogger("kehu")
API_PREFIX = "/api/v1"


def _operation_id(route: APIRoute) -> str:
    return route.name


def _problem(body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        body, status_code=body["status"], media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> JSONResponse:
        return _problem(exc.problem(instance=request.url.path), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        body = {
            "type": "https://kehu.dev/problems/validation-error",
            "title": "Invalid input",
            "status": 422,
            "detail": "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)[
                :500
            ],
            "instance": request.url.path,
            "errors": errors,
        }
        return _problem(body)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = problem_for_status(exc.status_code, str(exc.detail) if exc.detail else None)
        body["instance"] = request.url.path
        return _problem(body, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        if database_unavailable(exc):
            # Down, restarting or full: the request can be sent again as it is.
            log.warning(
                "database unavailable", extra={"path": request.url.path, "error": repr(exc)}
            )
            away = ServiceUnavailable("the database is unavailable; try again shortly")
            return _problem(away.problem(instance=request.url.path), away.headers)
        log.exception("unhandled error", extra={"path": request.url.path})
        return _problem(problem_for_status(500, "an unexpected error occurred; it has been logged"))


# The resource each router's endpoints belong to: an API key needs `<resource>:read` for GET and
# `<resource>:write` for the rest (services.api_keys); None: API keys may not call them at all.
KEY_SCOPES: tuple[tuple[APIRouter, str | None], ...] = (
    (lifecycle.router, "customers"),
    (pools.router, "customers"),
    (customers.router, "customers"),
    (contacts.router, "customers"),
    (activities.router, "activities"),
    (today.router, "activities"),
    (notifications.router, "notifications"),
    (opportunities.router, "opportunities"),
    (funnel.router, "opportunities"),
    (analytics.router, "analytics"),
    (contracts.router, "contracts"),
    (orders.router, "orders"),
    (dashboard.router, "analytics"),
    (config.router, "config"),
    (tag_rules.router, "config"),
    (org.router, "org"),
    (exports.customer_exports, "customers"),
    (exports.opportunity_exports, "opportunities"),
    (exports.contract_exports, "contracts"),
    (exports.order_exports, "orders"),
    # Imports of customers and contacts; importing orders also needs orders:write (checked there).
    (imports.router, "customers"),
    (api_keys_router.router, None),  # a key never manages keys
    (webhooks_router.router, None),
)


def _custom_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    # FastAPI documents 422 with its own HTTPValidationError shape; ours are problem details.
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            responses = operation.get("responses", {})
            if "422" in responses:
                responses["422"]["content"] = {
                    PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
                }
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            if "x-api-key-scope" in operation:
                needed = operation["x-api-key-scope"]
                note = (
                    f"API keys need the scope `{needed}`."
                    if needed
                    else "Not for API keys: sign in as a user."
                )
                operation["description"] = (
                    operation.get("description", "") + "\n\n" + note
                ).strip()
    for unused in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(unused, None)
    app.openapi_schema = schema
    return schema


class SPAStaticFiles(StaticFiles):
    """Serves the built SPA; unknown paths get index.html so client-side routes deep-link."""

    async def get_response(self, path: str, scope: Any) -> Any:
        try:
            return await super().get_response(path, scope)
        except StarletteHTTPException as exc:
            if exc.status_code != 404 or path == "api" or path.startswith("api/"):
                raise
            return FileResponse(Path(str(self.directory)) / "index.html")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = create_engine(
        settings.database_url, echo=settings.db_echo, pool_size=settings.db_pool_size
    )
    maker = create_sessionmaker(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        secret = await ensure_secret_key(maker, settings)
        app.state.token_settings = TokenSettings(
            secret=secret,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            access_ttl=dt.timedelta(minutes=settings.access_token_minutes),
            refresh_ttl=dt.timedelta(days=settings.refresh_token_days),
        )
        # Web Push keys exist from the first start, so browsers can subscribe right away.
        await vapid_keys(maker, settings)
        # The analytics driver takes seconds to import: do it now, beside the start-up.
        warm_up = asyncio.create_task(asyncio.to_thread(app.state.analytics.prepare))
        # One shared HTTP client (push services, later webhooks); never follows redirects.
        app.state.http = http_client()
        scheduler = None
        if settings.scheduler_enabled:
            scheduler = KehuScheduler(
                engine, maker, settings, app.state.http, analytics=app.state.analytics
            )
            await scheduler.start()
        app.state.scheduler = scheduler
        # Live notification streams are woken across workers by LISTEN/NOTIFY (PostgreSQL).
        inbox_listener = inbox_signal.Listener(settings.database_url)
        await inbox_listener.start()
        log.info(
            "kehu started", extra={"database": engine.url.render_as_string(hide_password=True)}
        )
        try:
            yield
        finally:
            await inbox_listener.stop()
            if scheduler is not None:
                await scheduler.stop()
            await app.state.http.aclose()
            await warm_up
            app.state.analytics.close()
            await engine.dispose()

    app = FastAPI(
        title="Kehu CRM",
        version="0.1.0",
        description="Mobile-first CRM: customers, pools, reminders, funnels, customer analytics. "
        "Errors are RFC 9457 problem details; lists page by cursor; writes take If-Match and "
        "Idempotency-Key. See docs/api.md.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.settings = settings
    app.state.analytics = AnalyticsStore(
        settings.database_url,
        workers=settings.analytics_workers,
        refresh_seconds=settings.analytics_refresh_seconds,
        full_reload_seconds=settings.analytics_full_reload_seconds,
        cache_dir=settings.analytics_cache_dir,
    )
    app.state.engine = engine
    app.state.sessionmaker = maker
    app.state.rate_limiter = rate_limits.limiter_for(engine)
    app.state.token_settings = None

    install_handlers(app)
    api = APIRouter(prefix=API_PREFIX)
    api.include_router(auth.router)  # signing in: no token yet, no key scope
    for router, resource in KEY_SCOPES:
        for route in router.routes:
            if isinstance(route, APIRoute):
                # The scope an API key needs, in the OpenAPI document (`x-api-key-scope`).
                method = next(iter(route.methods or {"GET"}))
                # False: API keys may not call it.
                needed = api_keys.scope_for(resource, method) if resource else False
                route.openapi_extra = {**(route.openapi_extra or {}), "x-api-key-scope": needed}
        api.include_router(router, dependencies=[Depends(api_guard(resource))])
    app.include_router(api)
    app.include_router(health.router)
    app.openapi = lambda: _custom_openapi(app)  # type: ignore[method-assign]

    app.add_middleware(
        IdempotencyMiddleware,
        maker_getter=lambda: app.state.sessionmaker,
        tokens_getter=lambda: app.state.token_settings,
        settings=settings,
    )
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        bulk_max_bytes=settings.max_bulk_body_bytes,
        bulk_paths=("/api/v1/orders/bulk",),
        path_max_bytes=imports.upload_limits(settings),
    )
    app.add_middleware(RequestLogMiddleware)

    if (settings.spa_dir / "index.html").is_file():
        app.mount("/", SPAStaticFiles(directory=settings.spa_dir, html=True), name="spa")
    return app


def http_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(10.0), follow_redirects=False)


def app_factory() -> FastAPI:
    """Entry point for ``uvicorn --factory app.main:app_factory``."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    return create_app(settings)
