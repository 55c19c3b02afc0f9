"""Scheduled job of imports (SPEC I1): process queued uploads, one chunk of rows per transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.services.importer import runs

JOB_ID = runs.JOB_ID


async def run_imports(maker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    await runs.process_queued_imports(maker, settings)
