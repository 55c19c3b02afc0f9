"""Imports (SPEC I1): the import record, its dry-run preview and the fields a file can map to."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from app.schemas.common import OutputModel

ImportEntity = Literal["customers", "contacts", "orders"]
ImportStatus = Literal["queued", "running", "done", "failed"]
DuplicatePolicy = Literal["skip", "update", "create"]


class ImportOut(OutputModel):
    id: int
    entity: ImportEntity
    status: ImportStatus = Field(
        description="`queued` until the import job takes it, `running` while rows are written, "
        "`done` (rows that could not be imported are counted in `failed` and listed in the "
        "error report), or `failed` when the whole file could not be imported (`error` says why)."
    )
    file_name: str
    file_size: int = Field(description="Bytes.")
    file_sha256: str
    file_format: Literal["csv", "xlsx"]
    encoding: str | None = Field(description="The text encoding a CSV file was read in.")
    sheet: str | None
    mapping: dict[str, str] = Field(description="Column index (from 0) → field key.")
    duplicate_policy: DuplicatePolicy
    rows_total: int
    rows_done: int
    created: int
    updated: int
    skipped: int = Field(description="Rows left out as duplicates.")
    failed: int = Field(description="Rows that could not be imported.")
    progress: float = Field(description="rows_done / rows_total, 0–1.")
    error: str | None
    created_by_id: int
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class ImportPage(OutputModel):
    items: list[ImportOut]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null on the last page."
    )


class ImportFieldOut(OutputModel):
    key: str = Field(description="What a mapping names, e.g. `name`, `phone`, `cf.budget`.")
    label: str
    label_en: str
    required: bool = Field(description="The file needs a column for it (or one of its group).")


class ImportCounts(OutputModel):
    rows: int
    create: int
    update: int
    skip: int = Field(description="Rows that would be left out as duplicates.")
    error: int = Field(description="Rows that cannot be imported as they are.")


class RowErrorOut(OutputModel):
    row: int = Field(description="The row number as a spreadsheet shows it (the header is 1).")
    column: int | None = Field(description="Column index (from 0), when the problem is in one.")
    column_name: str | None
    field: str
    message: str
    value: str = Field(description="The cell as it was in the file.")
    code: str


class DuplicateOut(OutputModel):
    row: int
    matched_on: list[str] = Field(description="`phone`, `email`, `name` (customers); ...")
    action: Literal["skip", "update"]
    customer_id: int | None = Field(
        default=None, description="The customer matched (null when outside your view)."
    )
    customer_name: str | None = Field(
        default=None, description="Its name, masked when outside your view."
    )
    contact_id: int | None = None
    similarity: float | None = None
    same_as_row: int | None = Field(
        default=None, description="The earlier row of the file this one repeats."
    )


class ImportPreviewOut(OutputModel):
    dry_run: Literal[True] = True
    entity: ImportEntity
    file_name: str
    file_size: int
    file_format: Literal["csv", "xlsx"]
    encoding: str | None
    delimiter: str | None
    sheet: str | None
    headers: list[str]
    mapping: dict[str, str] = Field(description="The mapping the rows were read with.")
    suggested_mapping: dict[str, str] = Field(
        description="What the headers suggest (used when no mapping is sent)."
    )
    fields: list[ImportFieldOut] = Field(description="Every field a column can be mapped to.")
    duplicate_policy: DuplicatePolicy
    counts: ImportCounts
    errors: list[RowErrorOut] = Field(description="The first row problems, in row order.")
    duplicates: list[DuplicateOut] = Field(description="The first duplicates, in row order.")
