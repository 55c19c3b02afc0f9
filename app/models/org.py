"""Organisation: departments (a tree), users, roles; plus auth bookkeeping rows."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, aliased, mapped_column, relationship

from app.db import Base
from app.models.base import JSONType, TimestampMixin, UTCDateTime, VersionedMixin, utcnow

user_roles = Table(
    "user_roles",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role_id", ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
)


class Department(TimestampMixin, VersionedMixin, Base):
    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("departments.id", ondelete="RESTRICT"), index=True
    )
    # Materialised path of ids, e.g. "/1/4/9/": the subtree of 4 is ``path LIKE '/1/4/%'``.
    path: Mapped[str] = mapped_column(String(500), index=True, default="/")
    manager_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL", use_alter=True), index=True
    )


class Role(TimestampMixin, VersionedMixin, Base):
    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    # Action names such as "customer.create" (see app.access.PERMISSIONS).
    permissions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Data scope per entity, e.g. {"customer": "department_and_children"}.
    scopes: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    is_system: Mapped[bool] = mapped_column(Boolean, default=False)
    # Caps on customers a holder of this role may own / lock (B7); NULL: no cap from this role.
    max_owned_customers: Mapped[int | None] = mapped_column(Integer)
    max_locked_customers: Mapped[int | None] = mapped_column(Integer)


class User(TimestampMixin, VersionedMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(255))
    department_id: Mapped[int | None] = mapped_column(
        ForeignKey("departments.id", ondelete="RESTRICT"), index=True
    )
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    locale: Mapped[str] = mapped_column(String(16), default="zh-CN")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    # Per-user caps overriding those of the roles (B7); NULL: take the roles' caps.
    max_owned_customers: Mapped[int | None] = mapped_column(Integer)
    max_locked_customers: Mapped[int | None] = mapped_column(Integer)

    roles: Mapped[list[Role]] = relationship(secondary=user_roles, lazy="raise")


# A user joined as a row's owner, under a name of its own (so a scope filter's sub-select over
# users stays uncorrelated). Built once: an alias is costly to build per query.
Owner = aliased(User, name="owner")


class RefreshToken(Base):
    """One issued refresh token. Tokens of one login form a family (a rotation chain)."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[str] = mapped_column(String(36), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class LoginAttempt(Base):
    """Failed logins, counted per account and address; shared by every worker process."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_key_at", "username", "address", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(254))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class SystemSetting(Base):
    """Deployment-wide values generated once and shared by all processes (e.g. signing keys)."""

    __tablename__ = "system_settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(String(4000))


class IdempotencyRecord(Base):
    """A POST seen with an ``Idempotency-Key``: in flight, then its stored response."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("caller", "key", name="uq_idempotency_records_caller_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    caller: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(2000))
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="in_flight")
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_headers: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)


class AccessStamp(Base):
    """One row whose ``version`` changes with every committed change to what a principal is
    built from (users, roles, their field levels, departments, team members, pools and their
    members): database triggers bump it (migration 0016), whatever wrote the change. A process
    reuses a principal it built while the stamp it read then is still the stamp
    (``app.access.PrincipalCache``)."""

    __tablename__ = "access_stamp"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
