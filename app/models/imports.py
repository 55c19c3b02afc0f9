"""Imports of customers, contacts and orders from CSV/XLSX files (SPEC I1).

An upload becomes an ``Import`` row holding the file until the import job has processed it; the
job writes the rows in chunks and keeps the counts here, and the rows it could not import (or
skipped as duplicates) go to ``ImportRowError`` — the error report users download.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.models.base import JSONType, TimestampMixin, UTCDateTime

IMPORT_ENTITIES = ("customers", "contacts", "orders")
IMPORT_STATUSES = ("queued", "running", "done", "failed")
DUPLICATE_POLICIES = ("skip", "update", "create")


class Import(TimestampMixin, Base):
    """One uploaded file and the progress of its import.

    ``dedupe_key`` is a hash of the file's SHA-256, the entity, the mapping and the duplicate
    policy: the same user uploading the same file the same way again gets this import back
    instead of a second one (the partial unique index also settles two such uploads at once).
    ``lease_token`` and ``heartbeat_at`` belong to the job run that is processing the import: a
    running import whose heartbeat is older than ``KEHU_IMPORT_STALE_SECONDS`` is taken over.
    """

    __tablename__ = "imports"
    __table_args__ = (
        CheckConstraint("entity IN ('customers', 'contacts', 'orders')", name="entity"),
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status"),
        CheckConstraint(
            "duplicate_policy IN ('skip', 'update', 'create')", name="duplicate_policy"
        ),
        CheckConstraint(
            "rows_done >= 0 AND created >= 0 AND updated >= 0 AND skipped >= 0 AND failed >= 0",
            name="counts",
        ),
        # A user's imports, newest first.
        Index("ix_imports_created_by", "created_by_id", "id"),
        # The job's queue.
        Index("ix_imports_status", "status", "id"),
        Index(
            "uq_imports_same_file",
            "created_by_id",
            "dedupe_key",
            unique=True,
            sqlite_where=text("status <> 'failed'"),
            postgresql_where=text("status <> 'failed'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    entity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    file_name: Mapped[str] = mapped_column(String(255))
    file_size: Mapped[int] = mapped_column(Integer)
    file_sha256: Mapped[str] = mapped_column(String(64))
    file_format: Mapped[str] = mapped_column(String(8))
    encoding: Mapped[str | None] = mapped_column(String(32))
    sheet: Mapped[str | None] = mapped_column(String(100))
    # {"<column index>": "<field key>"}: the mapping the rows are read with.
    mapping: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    duplicate_policy: Mapped[str] = mapped_column(String(8), default="skip")
    dedupe_key: Mapped[str] = mapped_column(String(64))
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    # Why the whole import failed (status "failed"); row problems are ImportRowError rows.
    error: Mapped[str | None] = mapped_column(String(1000))
    # The uploaded file, kept until the import has run (then cleared).
    content: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    lease_token: Mapped[str | None] = mapped_column(String(36))
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class ImportRowError(Base):
    """A row that was not imported (or was skipped as a duplicate), for the error report."""

    __tablename__ = "import_row_errors"
    __table_args__ = (Index("ix_import_row_errors_import", "import_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("imports.id", ondelete="CASCADE"))
    # The row as a spreadsheet numbers it (the header is row 1).
    row_number: Mapped[int] = mapped_column(Integer)
    # The header of the column the problem is in (when it is in one).
    column_name: Mapped[str | None] = mapped_column(String(200))
    field: Mapped[str] = mapped_column(String(80))
    message: Mapped[str] = mapped_column(String(500))
    value: Mapped[str] = mapped_column(String(500), default="")
    # "invalid", "required", ... (the cleaning step's codes), "duplicate", "not_found",
    # "chunk_failed".
    code: Mapped[str] = mapped_column(String(32), default="invalid")
