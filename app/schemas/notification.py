"""Inbox, notification settings and push subscriptions (SPEC D3, D4)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import Field, field_validator

from app.schemas.common import InputModel, OutputModel

NOTIFICATION_KINDS = (
    "visit_reminder",
    "missed_reminder",
    "follow_up_due",
    "customer_changed",
    "birthday",
    "anniversary",
    "digest",
    "stale_opportunity",
    "payment_overdue",
    "contract_expiring",
    "reclaim_warning",
    "customers_reclaimed",
    "customers_assigned",
    "customers_transferred",
    "customers_transferred_away",
    "customer_shared",
    "webhook_disabled",
    "customers_merged",
    "customer_frozen",
    "customer_abandoned",
)
HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class NotificationOut(OutputModel):
    id: int
    kind: str
    title: str
    body: str
    link: str
    data: dict[str, Any]
    created_at: dt.datetime
    read_at: dt.datetime | None


class UnreadCount(OutputModel):
    count: int


class MarkedRead(OutputModel):
    updated: int


class QuietHours(InputModel):
    start: str = Field(pattern=HHMM, description="Local time HH:MM")
    end: str = Field(pattern=HHMM, description="Local time HH:MM (may be after midnight)")


class NotificationSettingsIn(InputModel):
    push_kinds: dict[str, bool] = Field(
        default_factory=dict, description="Kind -> push to the phone. Kinds not listed push."
    )
    quiet_hours: QuietHours | None = None
    digest_hour: int | None = Field(default=8, ge=0, le=23)

    @field_validator("push_kinds")
    @classmethod
    def _known(cls, value: dict[str, bool]) -> dict[str, bool]:
        unknown = sorted(set(value) - set(NOTIFICATION_KINDS))
        if unknown:
            raise ValueError(f"unknown kinds: {', '.join(unknown)}")
        return value


class NotificationSettingsOut(OutputModel):
    push_kinds: dict[str, bool]
    quiet_hours: dict[str, str] | None
    digest_hour: int | None
    timezone: str


class PushKeys(InputModel):
    p256dh: str = Field(min_length=80, max_length=200, pattern=r"^[A-Za-z0-9_\-]+=*$")
    auth: str = Field(min_length=16, max_length=100, pattern=r"^[A-Za-z0-9_\-]+=*$")


class PushSubscriptionIn(InputModel):
    endpoint: str = Field(max_length=1000, pattern=r"^https?://[^\s]+$")
    keys: PushKeys
    user_agent: str | None = Field(default=None, max_length=300)
    # Browsers send this in PushSubscription.toJSON(); accepted and ignored.
    expirationTime: int | None = None


class PushSubscriptionOut(OutputModel):
    id: int
    endpoint: str
    created_at: dt.datetime


class VapidPublicKey(OutputModel):
    public_key: str
