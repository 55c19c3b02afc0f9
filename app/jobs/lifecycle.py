"""Scheduled jobs of the customer lifecycle: purge the recycle bin, drop expired team members."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.services import lifecycle


async def purge_recycle_bin(maker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    await lifecycle.purge_recycle_bin(maker, retention_days=settings.recycle_bin_retention_days)


async def remove_expired_team_members(
    maker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await lifecycle.remove_expired_team_members(maker)
