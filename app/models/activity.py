"""Follow-ups (logged interactions) and visit plans (SPEC D1, D2)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.models.base import JSONType, TimestampMixin, UTCDateTime, VersionedMixin, utcnow

FOLLOW_UP_TYPES = ("call", "visit", "message", "email", "meeting", "other", "return_visit")
VISIT_STATUSES = ("planned", "completed", "cancelled")


class FollowUp(Base):
    """An interaction that happened. Immutable once logged (corrections are new follow-ups)."""

    __tablename__ = "follow_ups"
    __table_args__ = (
        CheckConstraint(
            "type IN ('call', 'visit', 'message', 'email', 'meeting', 'other', 'return_visit')",
            name="type",
        ),
        CheckConstraint(
            "satisfaction IS NULL OR satisfaction BETWEEN 1 AND 5", name="satisfaction"
        ),
        Index("ix_follow_ups_customer_occurred", "customer_id", "occurred_at", "id"),
        Index("ix_follow_ups_author_occurred", "author_id", "occurred_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    visit_id: Mapped[int | None] = mapped_column(
        ForeignKey("visits.id", ondelete="SET NULL"), index=True
    )
    type: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    next_follow_up_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    check_in_lat: Mapped[float | None] = mapped_column(Float)
    check_in_lng: Mapped[float | None] = mapped_column(Float)
    check_in_accuracy_m: Mapped[float | None] = mapped_column(Float)
    check_in_address: Mapped[str | None] = mapped_column(String(300))
    # Metres from the check-in to the customer's recorded location, when both are known.
    distance_m: Mapped[float | None] = mapped_column(Float)
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Visit(TimestampMixin, VersionedMixin, Base):
    """A planned visit to a customer, with reminders before it starts."""

    __tablename__ = "visits"
    __table_args__ = (
        CheckConstraint("status IN ('planned', 'completed', 'cancelled')", name="status"),
        CheckConstraint("duration_minutes BETWEEN 5 AND 720", name="duration"),
        Index("ix_visits_owner_starts", "owner_id", "starts_at", "id"),
        Index("ix_visits_customer", "customer_id", "starts_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    duration_minutes: Mapped[int] = mapped_column(Integer, default=60)
    note: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="planned")
    reminder_offsets_minutes: Mapped[list[int]] = mapped_column(JSONType, default=list)
    # The follow-up logged when the visit was completed (follow_ups.visit_id points back).
    follow_up_id: Mapped[int | None] = mapped_column(Integer)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    cancel_reason: Mapped[str | None] = mapped_column(String(500))
