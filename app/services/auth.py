"""Login, token issue and rotation, logout, login throttling (SPEC A2)."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import transaction
from app.errors import TooManyRequests, Unauthorized
from app.models import LoginAttempt, RefreshToken, SystemSetting, User
from app.models.base import utcnow
from app.security import (
    TokenSettings,
    create_access_token,
    hash_refresh_token,
    new_refresh_token,
    new_secret_key,
    verify_password,
)

INVALID_CREDENTIALS = "invalid username or password"
INVALID_REFRESH = "invalid or expired refresh token"


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int


async def ensure_secret_key(maker: async_sessionmaker[AsyncSession], settings: Settings) -> str:
    """The JWT signing key: from settings, else generated once and shared through the database."""
    if settings.secret_key:
        return settings.secret_key
    async with transaction(maker) as session:
        existing = await session.get(SystemSetting, "jwt_secret")
        if existing is not None:
            return existing.value
    try:
        async with transaction(maker) as session:
            session.add(SystemSetting(key="jwt_secret", value=new_secret_key()))
    except IntegrityError:
        pass  # another worker stored one first; use theirs
    async with transaction(maker) as session:
        stored = await session.get(SystemSetting, "jwt_secret")
        assert stored is not None
        return stored.value


def _normalise_username(username: str) -> str:
    return username.strip().lower()


async def _check_throttle(
    session: AsyncSession, username: str, address: str, settings: Settings, now: dt.datetime
) -> None:
    window_start = now - dt.timedelta(seconds=settings.login_window_seconds)
    # Failures are only recorded while the key is not throttled, so this stays a handful of rows.
    failures = (
        await session.scalars(
            select(LoginAttempt.at)
            .where(
                LoginAttempt.username == username,
                LoginAttempt.address == address,
                LoginAttempt.at > window_start,
            )
            .order_by(LoginAttempt.at)
        )
    ).all()
    if len(failures) >= settings.login_max_failures:
        retry = settings.login_window_seconds - (now - failures[0]).total_seconds()
        raise TooManyRequests(
            "too many failed logins; try again later", retry_after=max(1, math.ceil(retry))
        )


async def authenticate(
    maker: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    username: str,
    password: str,
    address: str,
) -> int:
    """The id of the user whose password matches; raises 401 or 429.

    Failures are counted in the database per account name and address, so every worker process
    sees the same count; the count is written in its own transaction and survives the error reply.
    """
    name = _normalise_username(username)
    now = utcnow()
    async with transaction(maker) as session:
        await _check_throttle(session, name, address, settings, now)
        user = await session.scalar(select(User).where(User.username == name))
    ok = await verify_password(password, user.password_hash if user else None)
    if not ok or user is None or not user.is_active:
        async with transaction(maker) as session:
            session.add(LoginAttempt(username=name, address=address, at=now))
            await session.execute(
                delete(LoginAttempt).where(
                    LoginAttempt.username == name,
                    LoginAttempt.at < now - dt.timedelta(days=1),
                )
            )
        raise Unauthorized(INVALID_CREDENTIALS)
    async with transaction(maker) as session:
        await session.execute(
            delete(LoginAttempt).where(
                LoginAttempt.username == name, LoginAttempt.address == address
            )
        )
    return user.id


async def issue_tokens(
    session: AsyncSession, tokens: TokenSettings, user_id: int, *, family_id: str | None = None
) -> IssuedTokens:
    now = utcnow()
    refresh, refresh_hash = new_refresh_token()
    session.add(
        RefreshToken(
            user_id=user_id,
            family_id=family_id or str(uuid.uuid4()),
            token_hash=refresh_hash,
            issued_at=now,
            expires_at=now + tokens.refresh_ttl,
        )
    )
    await session.flush()
    return IssuedTokens(
        access_token=create_access_token(tokens, user_id, now),
        refresh_token=refresh,
        expires_in=int(tokens.access_ttl.total_seconds()),
    )


async def rotate_refresh_token(
    maker: async_sessionmaker[AsyncSession], tokens: TokenSettings, refresh_token: str
) -> IssuedTokens:
    """Spend a refresh token for a new pair. Re-use of a spent token revokes its whole family.

    The spend is a conditional UPDATE, so two concurrent refreshes with one token cannot both win.
    """
    now = utcnow()
    token_hash = hash_refresh_token(refresh_token)
    async with transaction(maker) as session:
        spent = (
            await session.execute(
                update(RefreshToken)
                .where(
                    RefreshToken.token_hash == token_hash,
                    RefreshToken.used_at.is_(None),
                    RefreshToken.revoked_at.is_(None),
                    RefreshToken.expires_at > now,
                )
                .values(used_at=now)
                .returning(RefreshToken.user_id, RefreshToken.family_id)
            )
        ).first()
        if spent is not None:
            user_id, family_id = spent
            active = await session.scalar(
                select(User.id).where(User.id == user_id, User.is_active.is_(True))
            )
            if active is not None:
                return await issue_tokens(session, tokens, user_id, family_id=family_id)
    # Unknown, expired, revoked or already spent. A spent token coming back means it leaked (or a
    # client raced itself): revoke the whole chain so the thief's copy dies with the owner's.
    async with transaction(maker) as session:
        known = await session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == token_hash)
        )
        if known is not None and known.used_at is not None:
            await session.execute(
                update(RefreshToken)
                .where(RefreshToken.family_id == known.family_id, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=now)
            )
    raise Unauthorized(INVALID_REFRESH)


async def revoke_refresh_token(session: AsyncSession, refresh_token: str) -> None:
    """Log out: the token's family is revoked (idempotent; unknown tokens are ignored)."""
    family_id = await session.scalar(
        select(RefreshToken.family_id).where(
            RefreshToken.token_hash == hash_refresh_token(refresh_token)
        )
    )
    if family_id is None:
        return
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
