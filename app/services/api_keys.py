"""API keys for integrations (SPEC J1): created by an admin, shown once, stored hashed.

A key reads ``kehu_<prefix>_<secret>``. The prefix (public, unique) finds the row; the secret's
SHA-256 is compared in constant time. A key acts as its *acting user* — the same data scope and
permissions, so it can never see more than that user — and, on top, only within its *scopes*:
``<resource>:read`` for GET and HEAD, ``<resource>:write`` for every other method, per router
(``app.main`` declares each router's resource; ``require_key_scope`` checks it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.access import Principal
from app.db import transaction
from app.errors import Forbidden, NotFound, ValidationFailed, field_error
from app.models import ApiKey, User
from app.models.base import utcnow

TOKEN_PREFIX = "kehu_"  # noqa: S105 (how keys begin, not a secret)
# What each resource covers; every resource has a read and a write scope (analytics: read only).
RESOURCES: Mapping[str, str] = {
    "customers": "customers, contacts, tags on customers, pools, claims and transfers",
    "activities": "follow-ups, visits, the Today list",
    "opportunities": "deals, pipelines, the funnel and forecast",
    "contracts": "contracts, payment plans and payments",
    "orders": "products and the orders ledger",
    "analytics": "customer analytics and the dashboard",
    "notifications": "notifications, reminders and push settings of the acting user",
    "config": "custom fields, tag groups, tags and auto-tag rules",
    "org": "users, departments and roles",
}
READ_ONLY_RESOURCES = frozenset({"analytics"})
SCOPES: tuple[str, ...] = tuple(
    f"{resource}:{access}"
    for resource in RESOURCES
    for access in ("read", "write")
    if not (access == "write" and resource in READ_ONLY_RESOURCES)
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Last use is written at most this often per key (not one write per request).
TOUCH_INTERVAL = dt.timedelta(minutes=1)


def scope_for(resource: str, method: str) -> str:
    """The scope a request needs: read for safe methods, write otherwise."""
    if method.upper() in SAFE_METHODS or resource in READ_ONLY_RESOURCES:
        return f"{resource}:read"
    return f"{resource}:write"


def check_key_scope(principal: Principal, resource: str | None, method: str) -> None:
    """403 when the caller is an API key without the scope (users' own tokens pass)."""
    if principal.key_scopes is None:
        return
    if resource is None:
        raise Forbidden("API keys cannot call this endpoint; sign in as a user")
    needed = scope_for(resource, method)
    if needed not in principal.key_scopes:
        raise Forbidden(f"this API key lacks the scope {needed}")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token() -> tuple[str, str, str]:
    """(token shown once, prefix, hash of the secret)."""
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return f"{TOKEN_PREFIX}{prefix}_{secret}", prefix, _digest(secret)


def is_api_key(token: str) -> bool:
    return token.startswith(TOKEN_PREFIX)


def caller_id(token: str) -> str:
    """A stable id of whoever presents ``token`` (a wrong secret gives another id), for keying
    idempotency records without a database read."""
    return "key:" + hashlib.sha256(token.encode()).hexdigest()


async def authenticate(session: AsyncSession, token: str, now: dt.datetime) -> ApiKey | None:
    """The live key ``token`` names, or None (unknown, wrong secret, revoked, expired)."""
    prefix, _, secret = token.removeprefix(TOKEN_PREFIX).partition("_")
    if not prefix or not secret:
        return None
    key = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None or not hmac.compare_digest(key.secret_hash, _digest(secret)):
        return None
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        return None
    return key


async def touch(
    target: async_sessionmaker[AsyncSession] | AsyncSession,
    key: ApiKey,
    address: str | None,
    now: dt.datetime,
) -> None:
    """Record the key's last use, at most once a minute: in ``target`` when it is the request's
    session, else in a short transaction of its own."""
    if key.last_used_at is not None and now - key.last_used_at < TOUCH_INTERVAL:
        return
    statement = (
        update(ApiKey)
        .where(
            ApiKey.id == key.id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - TOUCH_INTERVAL),
        )
        .values(last_used_at=now, last_used_from=(address or "")[:64] or None)
        .execution_options(synchronize_session=False)
    )
    if isinstance(target, AsyncSession):
        await target.execute(statement)
        return
    async with transaction(target) as session:
        await session.execute(statement)


def _bad(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, errors=[field_error(field, message)])


async def create_key(
    session: AsyncSession,
    principal: Principal,
    *,
    name: str,
    scopes: Sequence[str],
    acting_user_id: int | None,
    expires_at: dt.datetime | None,
) -> tuple[ApiKey, str]:
    """A new key and its token (the only time the token exists outside the caller's hands).

    It acts as the creator unless ``acting_user_id`` names another active user, which only an
    organisation admin may choose (they can give that user any role anyway)."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise _bad("scopes", f"unknown scopes {', '.join(unknown)}; use {', '.join(SCOPES)}")
    if not scopes:
        raise _bad("scopes", "give the key at least one scope")
    if expires_at is not None and expires_at <= utcnow():
        raise _bad("expires_at", "must be in the future")
    acting = acting_user_id or principal.user_id
    if acting != principal.user_id and not principal.can("org.manage"):
        raise Forbidden("only organisation admins may create keys that act as another user")
    user = await session.get(User, acting)
    if user is None or not user.is_active:
        raise _bad("acting_user_id", f"user {acting} does not exist or is not active")
    token, prefix, digest = new_token()
    key = ApiKey(
        name=name,
        prefix=prefix,
        secret_hash=digest,
        scopes=sorted(set(scopes), key=SCOPES.index),
        acting_user_id=acting,
        created_by_id=principal.user_id,
        expires_at=expires_at,
    )
    session.add(key)
    await session.flush()
    return key, token


async def list_keys(session: AsyncSession) -> list[ApiKey]:
    return list((await session.scalars(select(ApiKey).order_by(ApiKey.id))).all())


async def get_key(session: AsyncSession, key_id: int) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"API key {key_id} not found")
    return key


async def revoke_key(session: AsyncSession, key_id: int) -> ApiKey:
    """Revoke for good (idempotent: the first revocation time stays)."""
    key = await get_key(session, key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.flush()
    return key
