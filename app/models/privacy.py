"""Personal data (SPEC J4): field levels per role, and the log of exports and erasures."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.models.base import JSONType, UTCDateTime, utcnow

FIELD_LEVELS = ("hidden", "masked", "read", "edit")


class RoleFieldPermission(Base):
    """How much of one personal field a role's holders get (``app.access.PERSONAL_FIELDS``).

    A field without a row is ``edit`` for that role; a user with several roles gets the most
    permissive level any of them gives.
    """

    __tablename__ = "role_field_permissions"
    __table_args__ = (
        CheckConstraint("level IN ('hidden', 'masked', 'read', 'edit')", name="level"),
    )

    role_id: Mapped[int] = mapped_column(
        ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True
    )
    field: Mapped[str] = mapped_column(String(64), primary_key=True)
    level: Mapped[str] = mapped_column(String(8))


class PersonalDataLog(Base):
    """One export, personal-data export or erasure: who, what, about whom, why, how many rows.

    Append-only. ``customer_id`` is a plain integer (no foreign key): the entry outlives a purge.
    """

    __tablename__ = "personal_data_log"
    __table_args__ = (Index("ix_personal_data_log_customer", "customer_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    # Set when the caller was an API key acting as ``actor_id``.
    api_key_id: Mapped[int | None] = mapped_column(Integer)
    # export.customers / export.opportunities / export.contracts / export.orders,
    # personal_data.export, personal_data.erase
    action: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[int | None] = mapped_column(Integer)
    # The query parameters of an export (format, filters), as given.
    filters: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Rows written (exports: set when the file is complete; NULL if it was never finished).
    row_count: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(500))
