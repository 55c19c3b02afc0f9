"""Keyset (cursor) pagination over any sort expression, with NULLs last (SPEC A4).

A cursor is the sort value and id of the last row served, base64url-encoded JSON. Keyset pages
stay fast at any depth (no OFFSET) and never skip or repeat rows when others are inserted.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, literal, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import ValidationFailed, field_error

MAX_LIMIT = 200
M = TypeVar("M")


@dataclass(frozen=True)
class Cursor:
    value: Any
    id: int


def encode_cursor(value: Any, row_id: int) -> str:
    if isinstance(value, dt.datetime):
        payload: list[Any] = ["dt", value.isoformat(), row_id]
    else:
        payload = ["v", value, row_id]
    return (
        base64.urlsafe_b64encode(json.dumps(payload, ensure_ascii=False).encode())
        .decode()
        .rstrip("=")
    )


def decode_cursor(raw: str | None) -> Cursor | None:
    if not raw:
        return None
    try:
        padded = raw + "=" * (-len(raw) % 4)
        kind, value, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if kind == "dt":
            value = dt.datetime.fromisoformat(value)
        if not isinstance(row_id, int):
            raise ValueError("bad id")
        return Cursor(value, row_id)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise ValidationFailed(
            "the cursor is not one this API issued",
            errors=[field_error("cursor", "invalid cursor", where="query")],
        ) from None


def keyset_after(
    expr: Any,
    id_col: Any,
    cursor: Cursor,
    *,
    descending: bool,
    nullable: bool,
) -> ColumnElement[bool]:
    """Rows after ``cursor`` in the order given by :func:`order_by` with the same arguments."""
    if not nullable:
        # A row-value comparison lets the database walk an index on (expr, id) directly.
        key, last = (
            tuple_(expr, id_col),
            tuple_(literal(cursor.value, expr.type), literal(cursor.id)),
        )
        return key < last if descending else key > last
    past_id = id_col < cursor.id if descending else id_col > cursor.id
    if cursor.value is None:  # already in the NULL tail
        return and_(expr.is_(None), past_id)
    beyond = expr < cursor.value if descending else expr > cursor.value
    return or_(expr.is_(None), beyond, and_(expr == cursor.value, past_id))


def order_by(expr: Any, id_col: Any, *, descending: bool, nullable: bool) -> list[Any]:
    """``expr [DESC], id [DESC]``, with NULLs of a nullable ``expr`` last in both directions.

    Written as ``NULLS LAST`` (not a leading ``expr IS NULL`` key) so PostgreSQL can walk an index
    on ``(expr, id)`` forwards, or one on ``(expr DESC NULLS LAST, id DESC)``.
    """
    key = expr.desc() if descending else expr.asc()
    return [key.nulls_last() if nullable else key, id_col.desc() if descending else id_col.asc()]


async def fetch_page(
    session: AsyncSession,
    model: type[M],
    conditions: Sequence[ColumnElement[bool]],
    sort: Any,
    *,
    descending: bool,
    cursor: str | None,
    limit: int,
) -> tuple[list[M], str | None]:
    """One keyset page of ``model`` rows ordered by a non-null ``sort`` column, then id."""
    limit = max(1, min(limit, MAX_LIMIT))
    id_col = model.id  # type: ignore[attr-defined]
    where = list(conditions)
    after = decode_cursor(cursor)
    if after is not None:
        where.append(keyset_after(sort, id_col, after, descending=descending, nullable=False))
    stmt = (
        select(model)
        .where(*where)
        .order_by(*order_by(sort, id_col, descending=descending, nullable=False))
        .limit(limit + 1)
    )
    rows = list((await session.scalars(stmt)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(getattr(rows[-1], sort.key), rows[-1].id) if more else None  # type: ignore[attr-defined]
    return rows, next_cursor
