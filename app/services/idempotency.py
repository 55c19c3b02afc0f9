"""Idempotency keys for POST (SPEC A4; IETF draft "The Idempotency-Key HTTP Header Field").

A key is claimed by inserting a row in its own transaction before the request runs; the unique
(caller, key) constraint makes exactly one concurrent request the owner. When the request has
finished, its response is stored on the row and replayed for retries with the same body.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction
from app.errors import IdempotencyInFlight, IdempotencyKeyReused
from app.models import IdempotencyRecord
from app.models.base import utcnow


def request_fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    """What makes two requests "the same" for a key: method, path, query string and body."""
    digest = hashlib.sha256()
    for part in (method, path, query):
        digest.update(part.encode() + b"\0")
    digest.update(body)
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Claim:
    record_id: int


async def claim_or_replay(
    maker: async_sessionmaker[AsyncSession],
    *,
    caller: str,
    key: str,
    method: str,
    path: str,
    request_hash: str,
    ttl: dt.timedelta,
    in_flight_timeout: dt.timedelta,
) -> Claim | StoredResponse:
    """Claim the key for this request, or return the stored response to replay.

    Raises 422 when the key was used with another request, 409 while the first is in flight.
    A claim left in flight longer than ``in_flight_timeout`` (its process died) is taken over.
    """
    for _ in range(3):
        now = utcnow()
        try:
            async with transaction(maker) as session:
                record = IdempotencyRecord(
                    caller=caller,
                    key=key,
                    method=method,
                    path=path,
                    request_hash=request_hash,
                    state="in_flight",
                    created_at=now,
                    expires_at=now + ttl,
                )
                session.add(record)
                await session.flush()
                return Claim(record.id)
        except IntegrityError:
            pass
        async with transaction(maker) as session:
            existing = await session.scalar(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.caller == caller, IdempotencyRecord.key == key
                )
            )
            if existing is None:
                continue  # expired and purged in between; claim again
            if existing.expires_at <= now:
                await session.execute(
                    delete(IdempotencyRecord).where(IdempotencyRecord.id == existing.id)
                )
                continue
            if existing.request_hash != request_hash:
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was used for a different request; use a new key"
                )
            if existing.state == "done":
                assert existing.response_status is not None
                return StoredResponse(
                    existing.response_status,
                    dict(existing.response_headers or {}),
                    (existing.response_body or "").encode(),
                )
            if existing.created_at > now - in_flight_timeout:
                raise IdempotencyInFlight(
                    "the first request with this key is still being processed"
                )
            taken = await session.execute(
                update(IdempotencyRecord)
                .where(
                    IdempotencyRecord.id == existing.id,
                    IdempotencyRecord.created_at == existing.created_at,
                )
                .values(created_at=now)
            )
            if taken.rowcount == 1:  # type: ignore[attr-defined]
                return Claim(existing.id)
    raise IdempotencyInFlight("the first request with this key is still being processed")


async def store_response(
    maker: async_sessionmaker[AsyncSession], claim: Claim, response: StoredResponse
) -> None:
    async with transaction(maker) as session:
        await session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.id == claim.record_id)
            .values(
                state="done",
                response_status=response.status,
                response_headers=response.headers,
                response_body=response.body.decode("utf-8", errors="replace"),
            )
        )


async def release(maker: async_sessionmaker[AsyncSession], claim: Claim) -> None:
    """Forget a claim whose request failed on our side, so the client may retry with the key."""
    async with transaction(maker) as session:
        await session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.id == claim.record_id)
        )


async def purge_expired(maker: async_sessionmaker[AsyncSession]) -> int:
    async with transaction(maker) as session:
        result = await session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.expires_at < utcnow())
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
