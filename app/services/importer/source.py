"""From uploaded bytes to cleaned rows: the file layer's reader, mapping and cleaner, applied.

Both functions are CPU work without the database; callers run them in a worker thread.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.errors import ValidationFailed, field_error
from app.services.imports import (
    CustomFieldSpec,
    Entity,
    RowCleaner,
    RowError,
    SourceRow,
    Table,
    check_mapping,
    read_table,
    suggest_mapping,
)

# A mapping names at most this many columns (XLSX sheets are at most 16,384 wide).
MAX_MAPPED_COLUMNS = 500


@dataclass(frozen=True, slots=True)
class CleanRow:
    """One data row: its position among the data rows, its spreadsheet row number, the cells as
    read, the cleaned values (keyed by model column) and the problems found in it."""

    index: int
    number: int
    cells: list[str]
    values: dict[str, Any]
    errors: list[RowError]


@dataclass(frozen=True, slots=True)
class ParsedFile:
    table: Table
    mapping: dict[int, str]
    suggested: dict[int, str]


def parse_mapping(raw: str | None) -> dict[int, str] | None:
    """The ``mapping`` form field: a JSON object ``{"<column index>": "<field key>"}`` (column
    indexes from 0, as the dry run shows them); None when absent."""
    if raw is None or not raw.strip():
        return None

    def bad(message: str) -> ValidationFailed:
        return ValidationFailed(
            f"mapping: {message}", errors=[field_error("mapping", message, where="body")]
        )

    try:
        data = json.loads(raw)
    except ValueError:
        raise bad('not JSON; send an object such as {"0": "name", "2": "phone"}') from None
    if not isinstance(data, dict):
        raise bad("must be a JSON object of column index → field key")
    if len(data) > MAX_MAPPED_COLUMNS:
        raise bad(f"at most {MAX_MAPPED_COLUMNS} columns")
    mapping: dict[int, str] = {}
    for key, value in data.items():
        try:
            column = int(key)
        except ValueError:
            raise bad(f"{key!r} is not a column index (0, 1, 2 ...)") from None
        if not isinstance(value, str) or not value:
            raise bad(f'column {key}: the field must be a field key such as "name"')
        mapping[column] = value
    return mapping


def read_upload(
    data: bytes,
    filename: str | None,
    entity: Entity,
    mapping: Mapping[int, str] | None,
    custom_fields: Sequence[CustomFieldSpec],
    *,
    max_rows: int,
    max_bytes: int,
    sheet: str | None = None,
) -> ParsedFile:
    """Parse the file and settle its mapping (the given one, else the suggested one); every way
    the file cannot be imported raises ``ImportFileError`` (a 422 problem)."""
    table = read_table(data, filename, max_rows=max_rows, max_bytes=max_bytes, sheet=sheet)
    suggested = suggest_mapping(table.headers, entity, custom_fields)
    used = dict(sorted(mapping.items())) if mapping is not None else suggested
    check_mapping(table.headers, entity, used, custom_fields)
    return ParsedFile(table, used, suggested)


def make_cleaner(
    parsed: ParsedFile,
    entity: Entity,
    custom_fields: Sequence[CustomFieldSpec],
    tz: dt.tzinfo,
) -> RowCleaner:
    return RowCleaner(entity, parsed.mapping, custom_fields=custom_fields, tz=tz)


def clean_chunk(cleaner: RowCleaner, rows: Sequence[tuple[int, SourceRow]]) -> list[CleanRow]:
    """Clean data rows given with their position among the file's data rows."""
    out: list[CleanRow] = []
    for index, row in rows:
        values, errors = cleaner.clean(row.cells)
        out.append(CleanRow(index, row.number, row.cells, values, errors))
    return out


def clean_rows(
    parsed: ParsedFile,
    entity: Entity,
    custom_fields: Sequence[CustomFieldSpec],
    tz: dt.tzinfo,
) -> list[CleanRow]:
    """Every row of the file, cleaned."""
    cleaner = make_cleaner(parsed, entity, custom_fields, tz)
    return clean_chunk(cleaner, list(enumerate(parsed.table.rows)))
