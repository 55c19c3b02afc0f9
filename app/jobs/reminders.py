"""Scheduled job: deliver due reminders to the inbox and to devices (SPEC D3)."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.services import notifications


async def dispatch_reminders(
    maker: async_sessionmaker[AsyncSession], settings: Settings, http: httpx.AsyncClient
) -> None:
    await notifications.dispatch(maker, settings, http)
