"""Customer pools (公海池): pools, their reclaim rules and members, ownership history, claim counts.

A customer is in at most one pool (``customers.pool_id``) and only while it has no owner.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.models.base import JSONType, TimestampMixin, UTCDateTime, VersionedMixin, utcnow

RULE_KINDS = ("no_follow_up", "no_opportunity", "no_deal")
# Fields a pool can hide from everyone but its admins while a customer sits in it.
HIDEABLE_FIELDS = ("phones", "email", "address", "location", "contacts", "notes", "birth_date")
OWNERSHIP_ACTIONS = (
    "created",
    "claimed",
    "assigned",
    "released",
    "reclaimed",
    "transferred",
    "moved",
    "merged",
)


class Pool(TimestampMixin, VersionedMixin, Base):
    __tablename__ = "pools"
    __table_args__ = (
        CheckConstraint("warning_days >= 0", name="warning_days"),
        CheckConstraint("cooling_days >= 0", name="cooling_days"),
        CheckConstraint(
            "daily_claim_limit IS NULL OR daily_claim_limit >= 0", name="daily_claim_limit"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Customers with a signed deal / an open opportunity are never reclaimed into this pool.
    exclude_signed: Mapped[bool] = mapped_column(Boolean, default=False)
    exclude_open_opportunity: Mapped[bool] = mapped_column(Boolean, default=False)
    # Owners are warned this many days before a customer is reclaimed (0: no warning).
    warning_days: Mapped[int] = mapped_column(Integer, default=3)
    # Claims per member per business day (NULL: unlimited).
    daily_claim_limit: Mapped[int | None] = mapped_column(Integer)
    # A previous owner may not claim the customer back for this many days.
    cooling_days: Mapped[int] = mapped_column(Integer, default=0)
    hidden_fields: Mapped[list[str]] = mapped_column(JSONType, default=list)


class PoolRule(Base):
    """Reclaim when nothing of ``kind`` happened for ``days`` (or ``level_days[level]``)."""

    __tablename__ = "pool_rules"
    __table_args__ = (
        UniqueConstraint("pool_id", "kind", name="uq_pool_rules_pool_kind"),
        CheckConstraint("kind IN ('no_follow_up', 'no_opportunity', 'no_deal')", name="kind"),
        CheckConstraint("days > 0", name="days"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    days: Mapped[int] = mapped_column(Integer)
    # Days per customer level overriding ``days``, e.g. {"A": 60, "C": 15}.
    level_days: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)


class PoolMember(Base):
    """An admin (a user) or a member (a user, or a department with its child departments)."""

    __tablename__ = "pool_members"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'member')", name="role"),
        CheckConstraint("(user_id IS NULL) <> (department_id IS NULL)", name="one_subject"),
        CheckConstraint("role = 'member' OR user_id IS NOT NULL", name="admin_is_user"),
        UniqueConstraint("pool_id", "role", "user_id", name="uq_pool_members_user"),
        UniqueConstraint("pool_id", "role", "department_id", name="uq_pool_members_department"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(8))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    department_id: Mapped[int | None] = mapped_column(
        ForeignKey("departments.id", ondelete="CASCADE"), index=True
    )


class OwnershipEvent(Base):
    """Who owned a customer when: every change of owner or pool, with its reason (C3, C6, B9)."""

    __tablename__ = "customer_ownership_events"
    __table_args__ = (
        Index("ix_customer_ownership_events_customer", "customer_id", "at"),
        Index("ix_customer_ownership_events_pool", "pool_id", "at"),
        Index("ix_customer_ownership_events_from", "from_owner_id", "customer_id", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    action: Mapped[str] = mapped_column(String(16))
    from_owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    to_owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    pool_id: Mapped[int | None] = mapped_column(ForeignKey("pools.id", ondelete="SET NULL"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reason: Mapped[str | None] = mapped_column(String(300))


class ClaimCounter(Base):
    """Claims per member, pool and business day: incremented atomically in the database."""

    __tablename__ = "pool_claim_counters"

    pool_id: Mapped[int] = mapped_column(
        ForeignKey("pools.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
