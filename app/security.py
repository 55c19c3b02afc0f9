"""Password hashing, access tokens (JWT) and refresh tokens.

* Passwords: argon2id via pwdlib, always hashed and verified in a bounded thread pool so the event
  loop keeps serving while a hash takes its ~50 ms.
* Access tokens: HS256 JWTs with a fixed algorithm; ``exp``, ``iat``, ``aud``, ``iss`` and ``sub``
  are required on decode, so expired, foreign, tampered and ``alg: none`` tokens all fail.
* Refresh tokens: 256-bit random strings; only their SHA-256 is stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import anyio
import jwt
from anyio import CapacityLimiter
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

JWT_ALGORITHM = "HS256"

_password_hash = PasswordHash((Argon2Hasher(),))
_hash_limiter: CapacityLimiter | None = None
# Verified when the account does not exist, so a missing user costs as long as a wrong password.
_DUMMY_HASH = _password_hash.hash("kehu-no-such-user")


def _limiter() -> CapacityLimiter:
    global _hash_limiter
    if _hash_limiter is None:
        from app.config import get_settings

        _hash_limiter = CapacityLimiter(get_settings().password_hash_threads)
    return _hash_limiter


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(_password_hash.hash, password, limiter=_limiter())


async def verify_password(password: str, password_hash: str | None) -> bool:
    """Check a password; with no hash (unknown account) spend the same time and answer False."""
    target = password_hash or _DUMMY_HASH
    ok = await anyio.to_thread.run_sync(_password_hash.verify, password, target, limiter=_limiter())
    return bool(ok) and password_hash is not None


def hash_password_sync(password: str) -> str:
    """For the CLI and the demo seeder, which run outside any event loop's hot path."""
    return _password_hash.hash(password)


@dataclass(frozen=True)
class TokenSettings:
    secret: str
    issuer: str
    audience: str
    access_ttl: dt.timedelta
    refresh_ttl: dt.timedelta


def create_access_token(
    settings: TokenSettings, user_id: int, now: dt.datetime | None = None
) -> str:
    now = now or dt.datetime.now(dt.UTC)
    claims = {
        "sub": str(user_id),
        "iss": settings.issuer,
        "aud": settings.audience,
        "iat": int(now.timestamp()),
        "exp": int((now + settings.access_ttl).timestamp()),
        "jti": uuid.uuid4().hex,
        "typ": "access",
    }
    return jwt.encode(claims, settings.secret, algorithm=JWT_ALGORITHM)


class InvalidToken(Exception):
    pass


# Claims of access tokens verified in full, by (settings, token); oldest first seen dropped first.
_VERIFIED_MAX = 4096
_verified: dict[tuple[TokenSettings, str], dict[str, Any]] = {}


def decode_access_token(settings: TokenSettings, token: str) -> dict[str, Any]:
    """The claims of a valid access token, else ``InvalidToken``.

    A token's signature and fixed claims are checked once; its claims are then remembered (for
    the ``_VERIFIED_MAX`` most recently first-seen tokens) and only its expiry is checked again.
    A client sends the same token with every request for up to ``access_ttl``: verifying the
    HMAC and parsing the JSON again each time was about a twentieth of a customer read's cost.
    """
    key = (settings, token)
    claims = _verified.get(key)
    if claims is None:
        claims = _verify_access_token(settings, token)
        if len(_verified) >= _VERIFIED_MAX:
            del _verified[next(iter(_verified))]
        _verified[key] = claims
    # PyJWT's own rule, no leeway: expired once ``exp`` is not after now.
    if claims["exp"] <= time.time():
        raise InvalidToken("Signature has expired")
    return dict(claims)


def _verify_access_token(settings: TokenSettings, token: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            settings.secret,
            algorithms=[JWT_ALGORITHM],
            audience=settings.audience,
            issuer=settings.issuer,
            options={"require": ["exp", "iat", "aud", "iss", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    if claims.get("typ") != "access":
        raise InvalidToken("not an access token")
    return claims


def new_refresh_token() -> tuple[str, str]:
    """A fresh refresh token and the hash to store."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret_key() -> str:
    return secrets.token_urlsafe(48)
