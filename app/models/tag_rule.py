"""Auto-tag rules (SPEC H10): conditions on customer fields and metrics that give or take a tag."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.models.base import JSONType, TimestampMixin, UTCDateTime, VersionedMixin

TAG_RULE_ACTIONS = ("add", "remove", "sync")


class TagRule(TimestampMixin, VersionedMixin, Base):
    """``conditions`` is a list of ``{"field", "op", "value"}``, all of which must hold."""

    __tablename__ = "tag_rules"
    __table_args__ = (
        CheckConstraint("action IN ('add', 'remove', 'sync')", name="action"),
        CheckConstraint("last_added >= 0 AND last_removed >= 0", name="last_counts"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # A rule means nothing without its tag: deleting the tag deletes its rules.
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(8))
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    last_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_added: Mapped[int] = mapped_column(Integer, default=0)
    last_removed: Mapped[int] = mapped_column(Integer, default=0)
