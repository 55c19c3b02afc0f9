"""Integrations (SPEC J1): API keys that third-party apps call the API with."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.models.base import JSONType, TimestampMixin, UTCDateTime


class ApiKey(TimestampMixin, Base):
    """A key for one integration. It acts as ``acting_user`` (whose data scope and permissions it
    inherits) but only within ``scopes``. The secret is shown once; only its SHA-256 is kept
    (it is 256 random bits, so a fast hash is enough), found by the public ``prefix``."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    acting_user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_used_from: Mapped[str | None] = mapped_column(String(64))


class RateLimitCounter(Base):
    """Requests of one subject (``user:<id>``, ``key:<id>``) in one minute (SPEC J3), shared by
    the worker processes; UNLOGGED on PostgreSQL (migration 0012): counts need no durability."""

    __tablename__ = "rate_limit_counters"

    subject: Mapped[str] = mapped_column(String(80), primary_key=True)
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime(), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
