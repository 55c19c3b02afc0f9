"""Scheduled job of auto-tag rules (SPEC H10): re-apply every enabled rule to every customer."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.services import tag_rules
from app.services.analytics.frames import AnalyticsStore


async def evaluate_tag_rules(
    maker: async_sessionmaker[AsyncSession], settings: Settings, store: AnalyticsStore
) -> None:
    await tag_rules.run_enabled_rules(maker, store, tz=settings.business_timezone)
