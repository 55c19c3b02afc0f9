"""Scheduled jobs: deliver due reminders (D3); plan relationship reminders (D7) and digests (D6)."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import metrics
from app.config import Settings
from app.services import notifications, relationship


async def dispatch_reminders(
    maker: async_sessionmaker[AsyncSession], settings: Settings, http: httpx.AsyncClient
) -> None:
    stats = await notifications.dispatch(maker, settings, http)
    metrics.count_outcomes(metrics.REMINDERS, stats)


async def schedule_relationship_reminders(
    maker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await relationship.schedule_relationship_reminders(maker, settings.relationship_days_ahead)


async def schedule_digests(maker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    await relationship.schedule_digests(maker)


async def notify_stale_opportunities(
    maker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await relationship.schedule_stale_opportunity_notices(maker)


async def contract_deadlines(maker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    zone = settings.business_timezone
    await relationship.mark_overdue_payment_plans(maker, zone=zone)
    await relationship.contract_expiry(maker, settings.contract_expiry_days_ahead, zone=zone)
