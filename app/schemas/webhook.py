"""Schemas for webhooks (SPEC J2)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from app.schemas.common import InputModel, OutputModel
from app.services.webhooks import EVENT_TYPES

EVENT_TYPES_DOC = "Event types: " + "; ".join(f"`{t}` ({d})" for t, d in EVENT_TYPES.items())


class WebhookCreate(InputModel):
    name: str = Field(min_length=1, max_length=100)
    url: str = Field(
        min_length=1,
        max_length=2000,
        description="An https URL on a public address (checked again on every delivery).",
    )
    event_types: list[str] = Field(
        min_length=1, max_length=len(EVENT_TYPES), description=EVENT_TYPES_DOC
    )


class WebhookUpdate(InputModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    url: str | None = Field(default=None, min_length=1, max_length=2000)
    event_types: list[str] | None = Field(default=None, min_length=1, max_length=len(EVENT_TYPES))
    enabled: bool | None = Field(
        default=None, description="Re-enable after fixing the receiver (the failure run restarts)."
    )


class WebhookOut(OutputModel):
    id: int
    name: str
    url: str
    event_types: list[str]
    enabled: bool
    owner_id: int | None
    consecutive_failures: int
    disabled_at: dt.datetime | None
    disabled_reason: str | None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(
        description="The signing secret, shown this once (rotate to get another). Each delivery "
        'carries `Kehu-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`; '
        "recompute it over the raw body and reject timestamps older than a few minutes."
    )


class WebhookAttemptOut(OutputModel):
    id: int
    attempted_at: dt.datetime
    manual: bool
    status: int | None = Field(description="The receiver's HTTP status; null when none came.")
    latency_ms: int
    error: str | None
    response_excerpt: str = Field(description="The first 1 KiB of the receiver's answer.")


class WebhookDeliveryOut(OutputModel):
    id: int
    event_id: str
    event_type: str
    occurred_at: dt.datetime
    status: Literal["pending", "sending", "delivered", "failed"]
    attempts: int
    next_attempt_at: dt.datetime | None
    last_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None
    last_status: int | None
    last_error: str | None
    log: list[WebhookAttemptOut] = Field(description="Every attempt, newest first.")
