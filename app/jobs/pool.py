"""Scheduled jobs of the customer pools: reclaim neglected customers, warn owners before (C3)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.services import pools


async def reclaim_neglected_customers(
    maker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await pools.reclaim_neglected_customers(maker, batch_size=settings.reclaim_batch_size)


async def warn_of_reclaims(maker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    await pools.warn_of_reclaims(maker)
