"""Scheduled job: drop rows that have served their purpose (idempotency keys, login failures,
rate-limit windows that have ended)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction
from app.models import LoginAttempt, WebhookEvent
from app.models.base import utcnow
from app.services import idempotency, rate_limits

WEBHOOK_LOG_DAYS = dt.timedelta(days=30)


async def purge_expired_rows(maker: async_sessionmaker[AsyncSession]) -> None:
    await idempotency.purge_expired(maker)
    async with transaction(maker) as session:
        await session.execute(
            delete(LoginAttempt).where(LoginAttempt.at < utcnow() - dt.timedelta(days=1))
        )
        await rate_limits.purge_counters(session, utcnow())
        # Webhook events, their deliveries and attempt logs are kept 30 days.
        await session.execute(
            delete(WebhookEvent).where(
                WebhookEvent.dispatched.is_(True),
                WebhookEvent.occurred_at < utcnow() - WEBHOOK_LOG_DAYS,
            )
        )
