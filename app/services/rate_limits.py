"""Request rate limits per user and per API key (SPEC J3): fixed one-minute windows.

The count must be shared by every worker process of a deployment. On PostgreSQL (the only
database several workers may share) it is a row per subject and window in an UNLOGGED table,
incremented with one upsert in autocommit: one round trip, no lock held past the statement, and
nothing written to the WAL. On SQLite a deployment is one process (docs/operations.md), so the
count lives in that process's memory: a write per request would queue every reader behind the
database's single write lock.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.models import RateLimitCounter

WINDOW = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class Quota:
    """The state of one subject's window after a request was counted."""

    limit: int
    used: int
    reset_seconds: int  # until the window ends

    @property
    def exceeded(self) -> bool:
        return self.used > self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def headers(self) -> dict[str, str]:
        """``RateLimit-*`` fields (draft-ietf-httpapi-ratelimit-headers) for the response."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
            "RateLimit-Policy": f"{self.limit};w={int(WINDOW.total_seconds())}",
        }


def window_of(now: dt.datetime) -> tuple[dt.datetime, int]:
    """The window ``now`` falls in and the whole seconds until it ends (at least 1)."""
    start = now.replace(second=0, microsecond=0)
    return start, max(1, math.ceil((start + WINDOW - now).total_seconds()))


class RateLimiter(Protocol):
    async def hit(self, subject: str, limit: int, now: dt.datetime) -> Quota: ...


class MemoryRateLimiter:
    """Counts in this process (SQLite deployments: one process); only the current window is
    kept."""

    def __init__(self) -> None:
        self._window: dt.datetime | None = None
        self._counts: dict[str, int] = {}

    async def hit(self, subject: str, limit: int, now: dt.datetime) -> Quota:
        start, reset = window_of(now)
        if start != self._window:  # one event loop: no await between read and write
            self._window, self._counts = start, {}
        used = self._counts[subject] = self._counts.get(subject, 0) + 1
        return Quota(limit, used, reset)


class PostgresRateLimiter:
    """Counts in the ``rate_limit_counters`` table, shared by every process."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def hit(self, subject: str, limit: int, now: dt.datetime) -> Quota:
        start, reset = window_of(now)
        counter = RateLimitCounter
        statement = (
            insert(counter)
            .values(subject=subject, window_start=start, count=1)
            .on_conflict_do_update(
                index_elements=[counter.subject, counter.window_start],
                set_={"count": counter.count + 1},
            )
            .returning(counter.count)
        )
        async with self._engine.connect() as conn:
            used = int((await conn.execute(statement)).scalar_one())
            await conn.commit()
        return Quota(limit, used, reset)


async def purge_counters(session: AsyncSession, now: dt.datetime) -> None:
    """Drop the rows of windows that have ended (the housekeeping job)."""
    start, _ = window_of(now)
    await session.execute(delete(RateLimitCounter).where(RateLimitCounter.window_start < start))


def limiter_for(engine: AsyncEngine) -> RateLimiter:
    if engine.dialect.name == "postgresql":
        return PostgresRateLimiter(engine)
    return MemoryRateLimiter()
