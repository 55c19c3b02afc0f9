"""Optimistic concurrency for editable records: ``version`` is the ETag (ADR 0003)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from app.errors import Conflict, PreconditionFailed


def check_version(record: Any, expected: int) -> None:
    """412 unless the caller's If-Match names the record's current version."""
    if record.version != expected:
        raise PreconditionFailed(
            f"the record is at version {record.version}; reload it and apply your change again",
            current_version=record.version,
        )


async def flush_versioned(session: AsyncSession, *, if_match: bool = True) -> None:
    """Flush; a concurrent change that slipped in after the check also answers 412, or 409
    (``if_match=False``) for a write the caller sent no If-Match for: no precondition failed."""
    try:
        await session.flush()
    except StaleDataError:
        if not if_match:
            raise Conflict("the record changed while you were saving; try again") from None
        raise PreconditionFailed("the record changed while you were saving; reload it") from None
