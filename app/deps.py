"""Dependency aliases used by every router (``Annotated`` style)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.access import Principal, load_principal
from app.config import Settings
from app.db import READ_ONLY
from app.errors import Forbidden, PreconditionFailed, PreconditionRequired, Unauthorized
from app.security import InvalidToken, TokenSettings, decode_access_token
from app.services.analytics.frames import AnalyticsStore

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def get_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return maker


def get_token_settings(request: Request) -> TokenSettings:
    tokens: TokenSettings = request.app.state.token_settings
    return tokens


async def get_session(
    request: Request,
    maker: Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)],
) -> AsyncIterator[AsyncSession]:
    """One request, one transaction: committed when the handler returns, rolled back on error.

    Declared with ``scope="function"`` so the commit happens before the response is sent: a client
    never sees success for a change that did not commit. Safe methods read without taking
    SQLite's write lock (a no-op on PostgreSQL).
    """
    async with maker() as session, session.begin():
        if request.method in ("GET", "HEAD"):
            await session.connection(execution_options=READ_ONLY)
        yield session


def get_settings_of_app(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_analytics(request: Request) -> AnalyticsStore:
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
    tokens: TokenSettingsDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> Principal:
    if not token:
        raise Unauthorized("missing bearer token")
    try:
        claims = decode_access_token(tokens, token)
        user_id = int(claims["sub"])
    except (InvalidToken, ValueError) as exc:
        raise Unauthorized("invalid or expired token") from exc
    principal = await load_principal(session, user_id)
    if principal is None:
        raise Unauthorized("invalid or expired token")
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


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


def parse_if_match(if_match: str | None) -> int:
    """The version named by an ``If-Match`` header (RFC 9110 §13.1.1); 428 without one."""
    if not if_match:
        raise PreconditionRequired("send If-Match with the ETag you read")
    raw = if_match.strip()
    if raw.startswith("W/"):
        raw = raw[2:]
    raw = raw.strip('"')
    try:
        return int(raw)
    except ValueError:
        raise PreconditionFailed("If-Match does not name a version of this record") from None


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
