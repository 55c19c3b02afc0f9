"""Scheduled job of webhooks (SPEC J2): fan the outbox out and send what is due."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import metrics
from app.config import Settings
from app.services import webhooks

log = logging.getLogger(__name__)


async def dispatch_webhooks(maker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    report = await webhooks.dispatch(maker, settings)
    metrics.count_outcomes(metrics.WEBHOOKS, report)
    if report.fanned_out or report.delivered or report.failed_attempts:
        log.info("webhooks: %s", report)
