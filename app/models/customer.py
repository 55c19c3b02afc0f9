"""Customers, their contacts, phones index, team members, custom fields and tags."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, postgresql_only
from app.models.base import JSONType, TimestampMixin, UTCDateTime, VersionedMixin, utcnow
from app.models.org import User
from app.models.sql import month_day_sql

CUSTOMER_KINDS = ("company", "person")
# The indexed search expression of a name on PostgreSQL (see services.customers search).
NAME_BIGRAMS = "to_tsvector('simple'::regconfig, kehu_bigrams(name::text))"
CUSTOMER_LEVELS = ("A", "B", "C")
DEAL_STATUSES = ("none", "signed")
GENDERS = ("male", "female")


class Customer(TimestampMixin, VersionedMixin, Base):
    __tablename__ = "customers"
    __table_args__ = (
        CheckConstraint("kind IN ('company', 'person')", name="kind"),
        CheckConstraint("level IS NULL OR level IN ('A', 'B', 'C')", name="level"),
        CheckConstraint("deal_status IN ('none', 'signed')", name="deal_status"),
        CheckConstraint("gender IS NULL OR gender IN ('male', 'female')", name="gender"),
        Index("ix_customers_owner_live", "owner_id", "deleted_at"),
        CheckConstraint(
            "recycle_kind IS NULL OR recycle_kind IN ('deleted', 'frozen', 'abandoned', 'merged')",
            name="recycle_kind",
        ),
        CheckConstraint("pool_id IS NULL OR owner_id IS NULL", name="pool_or_owner"),
        # The pool browser: a pool's customers, newest arrivals first.
        Index("ix_customers_pool", "pool_id", "pooled_at", "id"),
        Index("ix_customers_deleted", "deleted_at", "id"),
        Index("ix_customers_location", "lat", "lng"),
        Index("ix_customers_created", "created_at", "id"),
        # The analytics data version: max(updated_at) from the index, not a scan.
        Index("ix_customers_updated", "updated_at"),
        # Keyset pages sorted by follow-up time (NULLS LAST both ways, see services.pagination).
        Index("ix_customers_last_follow_up", "last_follow_up_at", "id"),
        Index("ix_customers_next_follow_up", "next_follow_up_at", "id"),
        postgresql_only(
            Index(
                "ix_customers_last_follow_up_desc",
                text("last_follow_up_at DESC NULLS LAST"),
                text("id DESC"),
            )
        ),
        postgresql_only(
            Index(
                "ix_customers_next_follow_up_desc",
                text("next_follow_up_at DESC NULLS LAST"),
                text("id DESC"),
            )
        ),
        # Name search on PostgreSQL: character bigrams in a GIN index (migration 0002).
        postgresql_only(
            Index("ix_customers_name_bigrams", text(NAME_BIGRAMS), postgresql_using="gin")
        ),
        # A rep's birthdays and signing anniversaries ahead (services.today, migration 0017).
        *(
            postgresql_only(
                Index(
                    f"ix_customers_owner_{column}_month_day",
                    "owner_id",
                    text(month_day_sql(column, utc=utc)),
                    postgresql_where=text("deleted_at IS NULL"),
                )
            )
            for column, utc in (("birth_date", False), ("signed_at", True))
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # Lower-cased, punctuation and legal-form suffixes removed: the key for duplicate checks.
    name_normalized: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="company")
    phones: Mapped[list[str]] = mapped_column(JSONType, default=list)
    email: Mapped[str | None] = mapped_column(String(254))
    email_normalized: Mapped[str | None] = mapped_column(String(254), index=True)
    province: Mapped[str | None] = mapped_column(String(50), index=True)
    city: Mapped[str | None] = mapped_column(String(50), index=True)
    address: Mapped[str | None] = mapped_column(String(300))
    lat: Mapped[float | None] = mapped_column(Float)
    lng: Mapped[float | None] = mapped_column(Float)
    industry: Mapped[str | None] = mapped_column(String(50), index=True)
    source: Mapped[str | None] = mapped_column(String(50), index=True)
    level: Mapped[str | None] = mapped_column(String(1), index=True)
    gender: Mapped[str | None] = mapped_column(String(8))
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    notes: Mapped[str | None] = mapped_column(Text)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    # When the current owner received the customer (a pool's reclaim clock starts here).
    owner_assigned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    deal_status: Mapped[str] = mapped_column(String(16), default="none", index=True)
    signed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_follow_up_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    next_follow_up_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    deleted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Why it is in the recycle bin: deleted, frozen, abandoned or merged (into merged_into_id).
    recycle_kind: Mapped[str | None] = mapped_column(String(16))
    recycle_reason: Mapped[str | None] = mapped_column(String(500))
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL")
    )
    # Pool (公海): set only while the customer has no owner (SPEC C1).
    pool_id: Mapped[int | None] = mapped_column(ForeignKey("pools.id", ondelete="RESTRICT"))
    pooled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    pool_reason: Mapped[str | None] = mapped_column(String(300))
    previous_owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # A locked customer is never reclaimed (B7).
    locked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    locked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # The reclaim moment the owner was last warned about (one warning per warning period).
    reclaim_warned_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    owner: Mapped[User | None] = relationship(foreign_keys=[owner_id], lazy="raise")


class CustomerPhone(Base):
    """Normalised phone numbers of customers and contacts: the index for duplicates and search."""

    __tablename__ = "customer_phones"
    __table_args__ = (
        Index("ix_customer_phones_number", "number"),
        postgresql_only(
            Index(
                "ix_customer_phones_number_trgm",
                "number",
                postgresql_using="gin",
                postgresql_ops={"number": "gin_trgm_ops"},
            )
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[str] = mapped_column(String(32))


class CustomerTeamMember(Base):
    """Someone other than the owner who may read (or read and write) a customer, until expiry."""

    __tablename__ = "customer_team_members"
    __table_args__ = (
        UniqueConstraint("customer_id", "user_id", name="uq_customer_team_members_customer_user"),
        CheckConstraint("access IN ('read', 'write')", name="access"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    access: Mapped[str] = mapped_column(String(8), default="read")
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Contact(TimestampMixin, VersionedMixin, Base):
    __tablename__ = "contacts"
    __table_args__ = (
        Index("ix_contacts_customer_live", "customer_id", "deleted_at"),
        postgresql_only(
            Index("ix_contacts_name_bigrams", text(NAME_BIGRAMS), postgresql_using="gin")
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100), index=True)
    title: Mapped[str | None] = mapped_column(String(100))
    phones: Mapped[list[str]] = mapped_column(JSONType, default=list)
    email: Mapped[str | None] = mapped_column(String(254))
    wechat: Mapped[str | None] = mapped_column(String(100))
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    notes: Mapped[str | None] = mapped_column(Text)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class CustomFieldDefinition(TimestampMixin, VersionedMixin, Base):
    __tablename__ = "custom_field_definitions"
    __table_args__ = (
        UniqueConstraint("entity", "key", name="uq_custom_field_definitions_entity_key"),
        CheckConstraint(
            "type IN ('text', 'number', 'date', 'single_select', 'multi_select')", name="type"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    entity: Mapped[str] = mapped_column(String(32), default="customer")
    key: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(16))
    options: Mapped[list[str]] = mapped_column(JSONType, default=list)
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)


class TagGroup(TimestampMixin, VersionedMixin, Base):
    __tablename__ = "tag_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    color: Mapped[str | None] = mapped_column(String(16))
    # An exclusive group holds at most one tag per customer (e.g. "age band").
    exclusive: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Tag(TimestampMixin, VersionedMixin, Base):
    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("group_id", "name", name="uq_tags_group_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(
        ForeignKey("tag_groups.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer, default=0)


class CustomerTag(Base):
    """A tag on a customer for a span of time; ``removed_at`` NULL means it is on now.

    Rows are never deleted, so the tags a customer had at any past moment can be recovered.
    """

    __tablename__ = "customer_tags"
    __table_args__ = (
        Index(
            "uq_customer_tags_active",
            "customer_id",
            "tag_id",
            unique=True,
            sqlite_where=text("removed_at IS NULL"),
            postgresql_where=text("removed_at IS NULL"),
        ),
        Index("ix_customer_tags_tag_active", "tag_id", "removed_at"),
        # The analytics data version of tag history: max(removed_at) from the index; both
        # timestamps find the rows an analytics catch-up re-reads.
        Index("ix_customer_tags_removed", "removed_at"),
        Index("ix_customer_tags_added", "added_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="RESTRICT"))
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    added_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    removed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    removed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
