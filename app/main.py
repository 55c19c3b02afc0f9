"""The application factory: routers, problem-details handlers, middleware, lifespan, the SPA."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
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
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.telemetry import TelemetryConfig
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from app.access import PrincipalCache
from app.config import Settings, get_settings
from app.db import (
    create_engine,
    create_sessionmaker,
    database_unavailable,
    request_read_options,
)
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
    privacy,
    tag_rules,
    today,
)
from app.routers import (
    api_keys as api_keys_router,
)
from app.routers import webhooks as webhooks_router
from app.routers.common import API_PREFIX, DirectRoute
from app.security import TokenSettings
from app.services import api_keys, inbox_signal, rate_limits
from app.services.analytics.frames import AnalyticsStore
from app.services.auth import ensure_secret_key
from app.services.notifications import vapid_keys

log = logging.getLogger("kehu")


def _operation_id(route: APIRoute) -> str:
    return route.name


def _opentelemetry(enabled: bool) -> TelemetryConfig:
    """FastAPI's OpenTelemetry instrumentation (``KEHU_OPENTELEMETRY``), all of it or none."""
    return {"tracing": enabled, "metrics": enabled, "logs": enabled, "operation_spans": enabled}


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
        if exc.status_code == 400:
            # FastAPI and Starlette raise a bare 400 for a body they cannot read (not UTF-8, a
            # broken multipart form); malformed JSON is a 422 already. One answer for both.
            return _problem(_invalid_body(request, str(exc.detail or "")))
        body = problem_for_status(exc.status_code, str(exc.detail) if exc.detail else None)
        body["instance"] = request.url.path
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names the methods of the first route that matched the path only.
            headers["Allow"] = ", ".join(allowed_methods(app, request.url.path))
        return _problem(body, headers)

    @app.exception_handler(OverflowError)
    @app.exception_handler(DBAPIError)
    async def unstorable_input(request: Request, exc: Exception) -> JSONResponse:
        detail = _unstorable_input(exc)
        if detail is None:
            raise exc  # any other database error: `unexpected` below
        return _problem(_unstorable(request, detail))

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


def _invalid_body(request: Request, reason: str) -> dict[str, Any]:
    return {
        "type": "https://kehu.dev/problems/validation-error",
        "title": "Invalid input",
        "status": 422,
        "detail": f"the request body cannot be read: {reason}"[:500],
        "instance": request.url.path,
        "errors": [{"loc": ["body"], "msg": reason or "unreadable body", "type": "body_invalid"}],
    }


def _unstorable_input(exc: BaseException) -> str | None:
    """What of the request the database cannot take, or None for any other error: an integer
    beyond 64 bits (SQLite) or 32 (PostgreSQL) — the drivers raise OverflowError binding it —,
    or text with U+0000, which PostgreSQL refuses (asyncpg's CharacterNotInRepertoireError,
    SQLSTATE 22021). Request bodies are checked before (schemas.common.InputModel)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, OverflowError):
            return "a number in the request is out of range (no record has such an id)"
        if getattr(seen, "sqlstate", None) == "22021":
            return "text in the request contains a character that cannot be stored (NUL)"
        seen = seen.__cause__ or seen.__context__
    return None


def _unstorable(request: Request, detail: str) -> dict[str, Any]:
    return {
        "type": "https://kehu.dev/problems/validation-error",
        "title": "Invalid input",
        "status": 422,
        "detail": detail,
        "instance": request.url.path,
    }


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method some API route serves at ``path`` (for ``Allow`` on a 405, RFC 9110 15.5.6)."""
    methods: set[str] = set()
    for route in iter_route_contexts(app.routes):
        regex = getattr(route, "path_regex", None)
        if isinstance(route.original_route, APIRoute) and regex and regex.match(path):
            methods |= route.methods or set()
    return sorted(methods)


# The resource each router's endpoints belong to: an API key needs `<resource>:read` for GET and
# `<resource>:write` for the rest (services.api_keys); None: API keys may not call them at all.
KEY_SCOPES: tuple[tuple[APIRouter, str | None], ...] = (
    # Matched in this order, every request: the routers used most come first.
    (customers.router, "customers"),
    (lifecycle.router, "customers"),
    (pools.router, "customers"),
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
    # Field levels, personal-data export, erasure and their log: users only.
    (privacy.router, None),
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


class SPAMount(Mount):
    """The SPA at ``/``, which must not answer for the API: a request to an API path with a
    method it lacks would match the mount fully and get the SPA's ``405 Allow: GET, HEAD``."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = scope.get("path", "")
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            return Match.NONE, {}
        return super().matches(scope)


class SPAStaticFiles(StaticFiles):
    """Serves the built SPA; unknown paths get index.html so client-side routes deep-link."""

    async def get_response(self, path: str, scope: Any) -> Any:
        try:
            return await super().get_response(path, scope)
        except StarletteHTTPException as exc:
            if exc.status_code != 404 or path == "api" or path.startswith("api/"):
                raise
            return FileResponse(Path(str(self.directory)) / "index.html")


def settle_heap() -> None:
    """Set what start-up built (modules, routes, models, metadata: a quarter of a million
    objects) aside from the garbage collector. Its full collections otherwise walked them all,
    a 150-200 ms stall of every request in flight about once in a thousand list requests
    (bench/RESULTS.md 2026-12-04); they now walk what requests left behind (10-25 ms).
    The lifespan freezes again when the analytics warm-up ends, without a collection: by then
    requests are being served, and a full one would stall them."""
    gc.collect()
    gc.freeze()


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
        warm_up.add_done_callback(lambda _: gc.freeze())  # its modules too (settle_heap)
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
        settle_heap()
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
        telemetry=_opentelemetry(settings.opentelemetry),
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
    app.state.read_options = request_read_options(engine)
    app.state.db_slots = asyncio.Semaphore(settings.db_pool_size)
    app.state.rate_limiter = rate_limits.limiter_for(engine)
    app.state.principals = PrincipalCache()
    app.state.token_settings = None

    install_handlers(app)
    # Each router is included in the app itself, not in an /api/v1 router included in turn:
    # FastAPI resolves included routers per request, and every level of nesting costs a walk of
    # all the routers below it (ADR 0013).
    app.include_router(auth.router, prefix=API_PREFIX)  # signing in: no token yet, no key scope
    for router, resource in KEY_SCOPES:
        for route in router.routes:
            if isinstance(route, APIRoute):
                # The scope an API key needs, in the OpenAPI document (`x-api-key-scope`).
                method = next(iter(route.methods or {"GET"}))
                # False: API keys may not call it.
                needed = api_keys.scope_for(resource, method) if resource else False
                route.openapi_extra = {**(route.openapi_extra or {}), "x-api-key-scope": needed}
            if isinstance(route, DirectRoute):  # it runs the guard itself
                route.resource, route.guarded = resource, True
        app.include_router(router, prefix=API_PREFIX, dependencies=[Depends(api_guard(resource))])
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
        app.router.routes.append(
            SPAMount("/", SPAStaticFiles(directory=settings.spa_dir, html=True), name="spa")
        )
    return app


def http_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(10.0), follow_redirects=False)


def app_factory() -> FastAPI:
    """Entry point for ``uvicorn --factory app.main:app_factory``."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    return create_app(settings)
