"""Contracts with a status workflow, payment plans and payments, and the orders ledger (SPEC F1–F3).

Money is integer cents. The orders ledger is what analytics (RFM, pyramid, basket ...) reads;
signing a contract records its order.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.models.base import TimestampMixin, UTCDateTime, VersionedMixin, utcnow

CONTRACT_STATUSES = (
    "draft",
    "pending_approval",
    "approved",
    "rejected",
    "signed",
    "active",
    "completed",
    "terminated",
    "expired",
    "void",
)


class NumberSequence(Base):
    """A document number sequence: prefix + date part + zero-padded counter, e.g. HT202611-0007.

    The counter restarts when the date part changes. Numbers are taken with one conditional
    UPDATE ... RETURNING, so concurrent contracts never share a number.
    """

    __tablename__ = "number_sequences"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), default="")
    date_format: Mapped[str] = mapped_column(String(16), default="%Y%m")
    padding: Mapped[int] = mapped_column(Integer, default=4)
    period: Mapped[str] = mapped_column(String(16), default="")
    last_value: Mapped[int] = mapped_column(Integer, default=0)


class Contract(TimestampMixin, VersionedMixin, Base):
    __tablename__ = "contracts"
    __table_args__ = (
        CheckConstraint(
            "status IN ('draft', 'pending_approval', 'approved', 'rejected', 'signed', 'active', "
            "'completed', 'terminated', 'expired', 'void')",
            name="status",
        ),
        CheckConstraint("amount_cents >= 0", name="amount"),
        CheckConstraint(
            "end_date IS NULL OR start_date IS NULL OR end_date >= start_date", name="dates"
        ),
        Index("ix_contracts_owner_status", "owner_id", "status"),
        Index("ix_contracts_end_date", "end_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="RESTRICT"), index=True
    )
    opportunity_id: Mapped[int | None] = mapped_column(
        ForeignKey("opportunities.id", ondelete="SET NULL"), index=True
    )
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    title: Mapped[str] = mapped_column(String(200))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    start_date: Mapped[dt.date | None] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20), default="draft")
    notes: Mapped[str | None] = mapped_column(Text)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    signed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class ContractLine(Base):
    __tablename__ = "contract_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(
        ForeignKey("contracts.id", ondelete="CASCADE"), index=True
    )
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="RESTRICT"))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_cents: Mapped[int] = mapped_column(BigInteger)
    unit_cost_cents: Mapped[int] = mapped_column(BigInteger, default=0)


class PaymentPlan(TimestampMixin, VersionedMixin, Base):
    """An instalment: an amount due on a date. ``paid_cents`` sums the payments against it."""

    __tablename__ = "payment_plans"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'partly_paid', 'paid', 'overdue', 'void')", name="status"
        ),
        CheckConstraint("amount_cents > 0", name="amount"),
        Index("ix_payment_plans_status_due", "status", "due_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(
        ForeignKey("contracts.id", ondelete="CASCADE"), index=True
    )
    due_date: Mapped[dt.date] = mapped_column(Date)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    paid_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    note: Mapped[str | None] = mapped_column(String(500))


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (CheckConstraint("amount_cents > 0", name="amount"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(
        ForeignKey("contracts.id", ondelete="CASCADE"), index=True
    )
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("payment_plans.id", ondelete="SET NULL"))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    received_on: Mapped[dt.date] = mapped_column(Date)
    method: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(String(500))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Order(Base):
    """The orders ledger: what a customer bought, when, for how much and at what cost."""

    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_customer_ordered", "customer_id", "ordered_at"),
        # The orders an analytics catch-up re-reads (recorded lately, whenever they were placed).
        Index("ix_orders_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    contract_id: Mapped[int | None] = mapped_column(
        ForeignKey("contracts.id", ondelete="SET NULL"), unique=True
    )
    external_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    # Where the order was recorded: "contract" (signed here), "api" (an integration), "import".
    source: Mapped[str] = mapped_column(String(16), default="contract")
    # The sales channel (e.g. 门店, 电商, 直销) for product performance by channel.
    channel: Mapped[str | None] = mapped_column(String(32), index=True)
    ordered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    cost_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OrderLine(Base):
    __tablename__ = "order_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int] = mapped_column(
        ForeignKey("products.id", ondelete="RESTRICT"), index=True
    )
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_cents: Mapped[int] = mapped_column(BigInteger)
    unit_cost_cents: Mapped[int] = mapped_column(BigInteger, default=0)
