"""Products, pipelines with stages, opportunities and their history (SPEC E1, E2).

Money is stored as integer cents (exact on every backend). Opportunity history is kept as
validity intervals: each row holds the stage, status, amount, close date and owner that were
true from ``valid_from`` until ``valid_to`` (NULL = now), so the state at any past moment is one
indexed lookup — what the funnel snapshots for past dates are built on.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.models.base import TimestampMixin, UTCDateTime, VersionedMixin, utcnow

STAGE_KINDS = ("open", "won", "lost", "invalid")
FORECAST_CATEGORIES = ("pipeline", "best_case", "commit", "closed", "omitted")


class Product(TimestampMixin, VersionedMixin, Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    sku: Mapped[str | None] = mapped_column(String(64), unique=True)
    category: Mapped[str | None] = mapped_column(String(100), index=True)
    unit_price_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    unit_cost_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class LostReason(Base):
    """The configurable list a lost opportunity must pick its reason from."""

    __tablename__ = "lost_reasons"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Pipeline(TimestampMixin, VersionedMixin, Base):
    __tablename__ = "pipelines"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)


class PipelineStage(Base):
    __tablename__ = "pipeline_stages"
    __table_args__ = (
        UniqueConstraint("pipeline_id", "name", name="uq_pipeline_stages_pipeline_name"),
        CheckConstraint("probability BETWEEN 0 AND 100", name="probability"),
        CheckConstraint("kind IN ('open', 'won', 'lost', 'invalid')", name="kind"),
        CheckConstraint(
            "forecast_category IN ('pipeline', 'best_case', 'commit', 'closed', 'omitted')",
            name="forecast_category",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(
        ForeignKey("pipelines.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer)
    probability: Mapped[int] = mapped_column(Integer)
    stale_days: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16), default="open")
    forecast_category: Mapped[str] = mapped_column(String(16), default="pipeline")


class Opportunity(TimestampMixin, VersionedMixin, Base):
    __tablename__ = "opportunities"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'won', 'lost', 'invalid')", name="status"),
        CheckConstraint("amount_cents >= 0", name="amount"),
        Index("ix_opportunities_owner_status", "owner_id", "status"),
        Index("ix_opportunities_pipeline_stage", "pipeline_id", "stage_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id", ondelete="RESTRICT"))
    stage_id: Mapped[int] = mapped_column(ForeignKey("pipeline_stages.id", ondelete="RESTRICT"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    title: Mapped[str] = mapped_column(String(200))
    amount_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    expected_close_date: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="open")
    lost_reason_id: Mapped[int | None] = mapped_column(
        ForeignKey("lost_reasons.id", ondelete="RESTRICT")
    )
    close_note: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    stage_entered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The owner's override of the stage's forecast category (NULL: the stage decides).
    forecast_category: Mapped[str | None] = mapped_column(String(16))
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class OpportunityLine(Base):
    __tablename__ = "opportunity_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(
        ForeignKey("opportunities.id", ondelete="CASCADE"), index=True
    )
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="RESTRICT"))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_cents: Mapped[int] = mapped_column(BigInteger)


class OpportunityHistory(Base):
    """What an opportunity looked like from ``valid_from`` until ``valid_to`` (NULL: still)."""

    __tablename__ = "opportunity_history"
    __table_args__ = (
        Index("ix_opportunity_history_opp", "opportunity_id", "valid_from"),
        Index("ix_opportunity_history_period", "valid_from", "valid_to"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(ForeignKey("opportunities.id", ondelete="CASCADE"))
    pipeline_id: Mapped[int] = mapped_column(Integer)
    stage_id: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[int] = mapped_column(Integer)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    expected_close_date: Mapped[dt.date | None] = mapped_column(Date)
    valid_from: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    valid_to: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class Target(TimestampMixin, VersionedMixin, Base):
    """A monthly goal for a user or a department (and its children) on one dashboard metric.

    ``target_value`` is in cents for money metrics (won_amount, payments_received), else a count.
    """

    __tablename__ = "targets"
    __table_args__ = (
        CheckConstraint("(user_id IS NULL) <> (department_id IS NULL)", name="one_subject"),
        CheckConstraint("target_value > 0", name="positive"),
        UniqueConstraint("user_id", "department_id", "month", "metric", name="uq_targets_subject"),
        Index("ix_targets_month", "month"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    department_id: Mapped[int | None] = mapped_column(
        ForeignKey("departments.id", ondelete="CASCADE")
    )
    month: Mapped[str] = mapped_column(String(7))
    metric: Mapped[str] = mapped_column(String(32))
    target_value: Mapped[int] = mapped_column(BigInteger)
