"""Dependency aliases used by every router (``Annotated`` style)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import access
from app.access import Principal, PrincipalCache
from app.config import Settings
from app.errors import (
    Forbidden,
    PreconditionRequired,
    TooManyRequests,
    Unauthorized,
)
from app.models.base import utcnow
from app.reads import Reads
from app.security import InvalidToken, TokenSettings, decode_access_token
from app.services import api_keys
from app.services.analytics.frames import AnalyticsStore

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


# Every dependency here is ``async def``: FastAPI runs a plain ``def`` in its thread pool, a
# thread hop per dependency per request.


async def get_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return maker


async def get_token_settings(request: Request) -> TokenSettings:
    tokens: TokenSettings = request.app.state.token_settings
    return tokens


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One request, one transaction: committed when the handler returns, rolled back on error.

    Declared with ``scope="function"`` so the commit happens before the response is sent: a client
    never sees success for a change that did not commit. Safe methods only read: on SQLite
    without taking the write lock, on PostgreSQL without a transaction
    (``db.request_read_options``).

    Requests take one of the worker's ``db_slots`` (as many as the pool keeps connections) before
    they open a session, and give it back when the session closes: beyond that many the others
    wait their turn, first come first served, instead of all running at once and each taking
    the pool's slower wait for a connection (ADR 0013).
    """
    async with request.app.state.db_slots, _request_session(request) as session:
        yield session


@asynccontextmanager
async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with maker() as session, session.begin():
        if request.method in ("GET", "HEAD"):
            await session.connection(execution_options=request.app.state.read_options)
        yield session


async def get_settings_of_app(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_analytics(request: Request) -> AnalyticsStore:
    store: AnalyticsStore = request.app.state.analytics
    return store


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings_of_app)]
AnalyticsDep = Annotated[AnalyticsStore, Depends(get_analytics)]
SessionMakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]
TokenSettingsDep = Annotated[TokenSettings, Depends(get_token_settings)]


async def get_principal(
    request: Request,
    session: SessionDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> Principal:
    # The app's state is read here rather than through dependencies of its own: every request
    # solves this, and each dependency costs FastAPI's solving a little.
    if not token:
        raise Unauthorized("missing bearer token")
    if api_keys.is_api_key(token):
        by_key = await _key_principal(request, session, request.app.state.sessionmaker, token)
        request.state.principal = by_key
        return by_key
    principals: PrincipalCache = request.app.state.principals
    principal = await principals.get(session, _user_of(request, token))
    if principal is None:
        raise Unauthorized("invalid or expired token")
    request.state.principal = principal
    return principal


def _user_of(request: Request, token: str) -> int:
    """The user an access token was issued to, if it is valid and unexpired."""
    try:
        claims = decode_access_token(request.app.state.token_settings, token)
        return int(claims["sub"])
    except (InvalidToken, ValueError) as exc:
        raise Unauthorized("invalid or expired token") from exc


async def _key_principal(
    request: Request, session: AsyncSession, maker: async_sessionmaker[AsyncSession], token: str
) -> Principal:
    """An API key's caller: its acting user, limited to the key's scopes."""
    now = utcnow()
    key = await api_keys.authenticate(session, token, now)
    principals: PrincipalCache = request.app.state.principals
    principal = await principals.get(session, key.acting_user_id) if key else None
    if key is None or principal is None:
        raise Unauthorized("invalid, revoked or expired API key")
    address = request.client.host if request.client else None
    # A read records the use in a short transaction of its own; a write holds the database's
    # write lock already (SQLite), so the use is recorded with the request's own changes.
    await api_keys.touch(
        maker if request.method in api_keys.SAFE_METHODS else session, key, address, now
    )
    return dataclasses.replace(principal, key_scopes=frozenset(key.scopes), api_key_id=key.id)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def api_guard(resource: str | None) -> Callable[..., Coroutine[Any, Any, None]]:
    """Router dependency for every API endpoint after sign-in: the caller's rate limit (per
    user, or per API key), then an API key's scope — ``<resource>:read`` (GET) or ``:write``
    (others); ``None``: no key may call these endpoints. Users' own tokens have no scopes."""

    async def check(request: Request, response: Response, principal: CurrentPrincipal) -> None:
        response.headers.update(await guard(request, principal, resource))

    check.__name__ = f"api_guard_{resource or 'no_keys'}"
    return check


async def guard(request: Request, principal: Principal, resource: str | None) -> dict[str, str]:
    """``api_guard``'s checks; the rate limit's headers for the response."""
    settings: Settings = request.app.state.settings
    if principal.api_key_id is not None:
        subject, limit = f"key:{principal.api_key_id}", settings.rate_limit_key_per_minute
    else:
        subject, limit = f"user:{principal.user_id}", settings.rate_limit_user_per_minute
    headers: dict[str, str] = {}
    if limit:
        quota = await request.app.state.rate_limiter.hit(subject, limit, utcnow())
        if quota.exceeded:
            raise TooManyRequests(
                f"more than {limit} requests a minute; retry after the window ends",
                retry_after=quota.reset_seconds,
                headers={**quota.headers(), "Retry-After": str(quota.reset_seconds)},
            )
        headers = quota.headers()
    api_keys.check_key_scope(principal, resource, request.method)
    return headers


@dataclasses.dataclass(frozen=True, slots=True)
class DirectRead:
    """What the endpoint of a direct route reads with: the caller, the reads, and the headers
    the guard adds to the response (the rate limit's)."""

    principal: Principal
    reads: Reads
    headers: dict[str, str]


@asynccontextmanager
async def direct_read(request: Request) -> AsyncIterator[DirectRead]:
    """The caller of a direct route (``routers.common.DirectRoute``, ADR 0014), authenticated and
    guarded as ``get_principal`` and ``api_guard`` do, with ``Reads`` on a pooled connection
    that only reads — within the worker's database slots, as a session is.

    A principal kept by the worker (``PrincipalCache.kept``) serves the request before the
    access stamp is read: the reads are ``access.CheckedReads``, which check the stamp with the
    first query (within it, when the query reads it). If it changed, ``StaleAccess`` ends the
    endpoint and the route serves the request again (``DirectRoute``), flagged in
    ``request.state.access_stale``: the stamp is then read first and the principal built anew,
    in a session of its own, as an API key's always is (the rare paths). The guard runs once.
    """
    route = request.scope.get("route")
    if not getattr(route, "guarded", False):
        raise RuntimeError("direct_read serves a DirectRoute included with its guard")
    resource: str | None = getattr(route, "resource", None)
    token = await oauth2_scheme(request)
    if not token:
        raise Unauthorized("missing bearer token")
    state = request.app.state
    async with state.db_slots, Reads.checkout(state.engine, state.read_options) as reads:
        principal: Principal | None
        if api_keys.is_api_key(token):
            async with _request_session(request) as session:
                principal = await _key_principal(request, session, state.sessionmaker, token)
        else:
            user_id = _user_of(request, token)
            principals: PrincipalCache = state.principals
            kept = (
                None if getattr(request.state, "access_stale", False) else principals.kept(user_id)
            )
            if kept is not None:
                stamp, principal = kept
                reads = access.CheckedReads(reads, stamp)
            else:
                stamp = await reads.scalar(access.STAMP)
                principal = principals.cached(user_id, stamp)
                if principal is None:
                    async with _request_session(request) as session:
                        principal = await principals.build(session, user_id, stamp)
            if principal is None:
                raise Unauthorized("invalid or expired token")
        request.state.principal = principal
        headers: dict[str, str] | None = getattr(request.state, "guard_headers", None)
        if headers is None:
            headers = request.state.guard_headers = await guard(request, principal, resource)
        yield DirectRead(principal, reads, headers)


def require(permission: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """Dependency: the caller must hold ``permission``."""

    async def check(principal: CurrentPrincipal) -> Principal:
        if not principal.can(permission):
            raise Forbidden(f"requires permission {permission}")
        return principal

    check.__name__ = f"require_{permission.replace('.', '_')}"
    return check


def etag_for(version: int) -> str:
    return f'"{version}"'


# What an If-Match that names no version stands for: versions start at 1, so it never matches.
NO_VERSION = -1


def parse_if_match(if_match: str | None) -> int:
    """The version named by an ``If-Match`` header (RFC 9110 §13.1.1); 428 without one.

    A value that names no version gives ``NO_VERSION``: the record's version check then answers
    412, after the request was validated and the record found (RFC 9110 §13.2.1: preconditions
    count only for a request that would otherwise succeed, so a bad id or body is 404/422)."""
    if not if_match:
        raise PreconditionRequired("send If-Match with the ETag you read")
    raw = if_match.strip()
    if raw.startswith("W/"):
        raw = raw[2:]
    raw = raw.strip('"')
    try:
        return int(raw)
    except ValueError:
        return NO_VERSION


async def if_match_header(
    _caller: CurrentPrincipal,
    if_match: Annotated[
        str | None,
        Header(description="The ETag from your last read; required, stale values get 412."),
    ] = None,
) -> int:
    # Depending on the caller makes authentication answer first: 401 before 428.
    return parse_if_match(if_match)


IfMatch = Annotated[int, Depends(if_match_header)]
