"""Optimistic concurrency for editable records: ``version`` is the ETag (ADR 0003)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from app.errors import PreconditionFailed


def check_version(record: Any, expected: int) -> None:
    """412 unless the caller's If-Match names the record's current version."""
    if record.version != expected:
        raise PreconditionFailed(
            f"the record is at version {record.version}; reload it and apply your change again",
            current_version=record.version,
        )


async def flush_versioned(session: AsyncSession) -> None:
    """Flush; a concurrent change that slipped in after the check also answers 412."""
    try:
        await session.flush()
    except StaleDataError:
        raise PreconditionFailed("the record changed while you were saving; reload it") from None
