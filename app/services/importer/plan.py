"""What an import does with each row, and the pieces every entity's importer shares."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.access import Principal
from app.services.importer.source import CleanRow
from app.services.imports import RowError, SourceRow

Action = Literal["create", "update", "skip", "fail"]
Policy = Literal["skip", "update", "create"]
# Values per IN list (asyncpg binds at most 32,767 parameters per statement; SQLite 32,766).
IN_CHUNK = 5000


@dataclass(slots=True)
class RowPlan:
    """The fate of one row: create a record, update one (``target``, or the record the earlier
    row ``ref`` creates), skip it as a duplicate, or fail. ``notes`` say why it fails or is
    skipped; ``data`` holds what the plan resolved (owner, tags, customer, product ids)."""

    row: CleanRow
    action: Action
    notes: list[RowError] = field(default_factory=list)
    target: int | None = None
    ref: int | None = None
    group: Hashable | None = None
    data: dict[str, Any] = field(default_factory=dict)
    # For previews: what a skipped or updating row matched.
    duplicate_of: dict[str, Any] | None = None

    def fail(self, error: RowError) -> None:
        self.action = "fail"
        self.notes.append(error)


def plans_for(rows: Sequence[CleanRow]) -> list[RowPlan]:
    """A first plan: rows with problems fail, the others would create a record."""
    return [RowPlan(r, "fail", list(r.errors)) if r.errors else RowPlan(r, "create") for r in rows]


def note(
    plan: RowPlan,
    columns: Mapping[str, int],
    field_key: str,
    message: str,
    code: str,
) -> RowError:
    """A row problem about ``field_key``, with the cell it is about."""
    column = columns.get(field_key)
    raw = plan.row.cells[column] if column is not None and column < len(plan.row.cells) else ""
    return RowError(field_key, message, raw, code, column)


@dataclass
class WriteContext:
    """What the writes of one import share: who imports, when, and the records created so far
    (row index → id) for rows that update what an earlier row of the file created."""

    principal: Principal
    now: dt.datetime
    created_ids: dict[int, int] = field(default_factory=dict)


@dataclass
class ChunkOutcome:
    """What writing a chunk did; applied to the import (and to ``WriteContext``) only once the
    chunk's transaction has committed."""

    created: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    notes: list[tuple[CleanRow, RowError]] = field(default_factory=list)
    created_ids: dict[int, int] = field(default_factory=dict)
    # Owners (other than the importer) told afterwards: customers given to them, changed.
    assigned: Counter[int] = field(default_factory=Counter)
    changed: Counter[int] = field(default_factory=Counter)


def update_targets(
    plans: Sequence[RowPlan],
    columns: Mapping[str, int],
    ctx: WriteContext,
    out: ChunkOutcome,
) -> list[tuple[RowPlan, int]]:
    """Each updating row with the id of the record it updates: its duplicate, or the record an
    earlier row of the file created (this chunk's or a committed one's). A row whose earlier row
    was not imported fails, noted in ``out``."""
    pairs: list[tuple[RowPlan, int]] = []
    for p in plans:
        target = p.target
        if target is None and p.ref is not None:
            target = out.created_ids.get(p.ref, ctx.created_ids.get(p.ref))
        if target is None:
            out.failed += 1
            message = "not imported: the earlier row it repeats was not imported"
            out.notes.append((p.row, note(p, columns, "name", message, "not_found")))
            continue
        pairs.append((p, target))
    return pairs


class EntityImporter(Protocol):
    """One entity's import. ``plan`` is called chunk after chunk, in processing order, and may
    keep what it learnt (earlier rows of the file, names it resolved) for the next chunks."""

    columns: Mapping[str, int]

    def group_of(self, index: int, cells: Sequence[str]) -> Hashable | None:
        """Rows with the same group are written together (None: a row of its own)."""
        ...

    async def plan(
        self, session: AsyncSession, principal: Principal, rows: list[CleanRow]
    ) -> list[RowPlan]: ...

    async def write(
        self, session: AsyncSession, ctx: WriteContext, plans: Sequence[RowPlan]
    ) -> ChunkOutcome:
        """Write the chunk's ``create`` and ``update`` rows (no others are passed)."""
        ...

    def written(self, outcome: ChunkOutcome) -> None:
        """The chunk's writes have committed (records made by the import itself are no
        duplicates of its later rows: those are the earlier rows of the file)."""
        ...


def processing_order(
    rows: Sequence[SourceRow], group_of: Callable[[int, Sequence[str]], Hashable | None]
) -> list[tuple[int, SourceRow]]:
    """The data rows (with their position in the file) in the order they are written: file
    order, except that the rows of one group follow its first row."""
    groups: dict[Hashable, list[tuple[int, SourceRow]]] = {}
    for index, row in enumerate(rows):
        key = group_of(index, row.cells)
        groups.setdefault(("row", index) if key is None else key, []).append((index, row))
    return [member for members in groups.values() for member in members]


def split(
    rows: Sequence[tuple[int, SourceRow]],
    size: int,
    group_of: Callable[[int, Sequence[str]], Hashable | None],
) -> Iterator[Sequence[tuple[int, SourceRow]]]:
    """Consecutive slices of about ``size`` rows; the rows of one group are never split."""
    keys = [group_of(index, row.cells) for index, row in rows]
    start = 0
    while start < len(rows):
        end = min(start + size, len(rows))
        while end < len(rows) and keys[end] is not None and keys[end] == keys[end - 1]:
            end += 1
        yield rows[start:end]
        start = end


def columns_of(mapping: Mapping[int, str]) -> dict[str, int]:
    """field key → column index."""
    return {key: column for column, key in mapping.items()}
