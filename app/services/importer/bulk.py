"""Bulk writes for the import job: one statement (or one COPY) per table and chunk.

On PostgreSQL a chunk's rows go in with ``COPY ... FROM STDIN`` in binary (asyncpg's
``copy_records_to_table``) inside the chunk's transaction: no statement per row, no SQL to
parse, values encoded by the driver column by column — against ``executemany``, which runs
(and binds) one INSERT per row, this is what makes 100,000 rows a matter of seconds. Ids for
rows whose children follow in the same chunk are drawn from the table's sequence first
(``nextval`` over ``generate_series``), so they are known, in row order, before the rows go in.
SQLite (one process, in-process driver) takes the plain ``executemany`` / ``RETURNING`` path.

``record_timeline`` and ``record_ownership`` write what ``services.audit.record_rows`` and
``services.ownership.record`` write — the rows and their webhook outbox rows (built by
``services.webhooks``) — the same way.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ARRAY, JSON, ColumnElement, Table, any_, bindparam, insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import chunks
from app.models import AuditEvent, OwnershipEvent, WebhookEvent
from app.services import webhooks

# JSON for jsonb columns (the server parses it; the asyncpg codec SQLAlchemy installs takes
# text): one encoder, no per-call setup.
_to_json = json.JSONEncoder(
    ensure_ascii=False, check_circular=False, separators=(",", ":"), default=str
).encode
# Rows per statement on SQLite (its limit is 32,766 parameters per statement).
SQLITE_BATCH = 1000


async def custom_plans(session: AsyncSession) -> None:
    """Plan this transaction's statements for their parameters every time (PostgreSQL).

    The driver prepares each statement once per connection and the server may then settle on
    a generic plan — made while the table was small (an import starts out filling it), a
    sequential scan that the growing table turns into seconds per lookup. For the lookups of
    a plan only: in a transaction that writes, it would also re-plan every foreign-key check
    of every row (those run saved plans), doubling the database's work."""
    if _is_postgresql(session):
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


def one_of(session: AsyncSession, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """``column IN (values)``; on PostgreSQL ``column = ANY($1)`` with one array parameter —
    the same plan for any number of values, no statement of thousands of parameters to parse."""
    if _is_postgresql(session):
        condition: ColumnElement[bool] = column == any_(
            bindparam(None, list(values), type_=ARRAY(column.type))
        )
        return condition
    result: ColumnElement[bool] = column.in_(values)
    return result


def _is_postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _table(model: Any) -> Table:
    table = model.__table__ if hasattr(model, "__table__") else model
    assert isinstance(table, Table)
    return table


@functools.cache
def _is_json(table: Table, name: str) -> bool:
    column_type = table.c[name].type
    variant = getattr(column_type, "_variant_mapping", {}).get("postgresql", column_type)
    return isinstance(variant, JSON) or isinstance(column_type, JSON)


async def insert_rows(session: AsyncSession, model: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys, values ready for the columns)."""
    if not rows:
        return
    table = _table(model)
    if not _is_postgresql(session):
        for batch in chunks(list(rows), SQLITE_BATCH):
            await session.execute(insert(table), list(batch))
        return
    rows = _with_defaults(table, rows)
    columns = list(rows[0].keys())
    json_columns = [i for i, name in enumerate(columns) if _is_json(table, name)]
    records: list[tuple[Any, ...]] = []
    for row in rows:
        record = [row[name] for name in columns]
        for i in json_columns:
            if record[i] is not None:
                record[i] = _to_json(record[i])
        records.append(tuple(record))
    driver = await _driver_connection(session)
    await driver.copy_records_to_table(table.name, records=records, columns=columns)


async def _driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session, inside the session's transaction."""
    connection = await session.connection()
    # A statement through SQLAlchemy first: its driver adapter opens the transaction lazily,
    # and COPY must run inside it.
    await connection.exec_driver_sql("SELECT 1")
    raw = await connection.get_raw_connection()
    return raw.driver_connection


def _with_defaults(table: Table, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows with the columns' Python-side defaults filled in (the SQL above skips SQLAlchemy's
    own default handling; server-side defaults apply by themselves)."""
    given = set(rows[0].keys())
    missing = [
        c
        for c in table.columns
        if c.name not in given and c.default is not None and not c.primary_key
    ]
    if not missing:
        return [dict(r) for r in rows]
    out = []
    for row in rows:
        filled = dict(row)
        for column in missing:
            default: Any = column.default
            filled[column.name] = default.arg(None) if default.is_callable else default.arg
        out.append(filled)
    return out


async def insert_with_ids(
    session: AsyncSession, model: Any, rows: Sequence[dict[str, Any]]
) -> list[int]:
    """Insert ``rows`` and return their new ids, in row order."""
    if not rows:
        return []
    table = _table(model)
    if not _is_postgresql(session):
        ids: list[int] = []
        for batch in chunks(list(rows), SQLITE_BATCH):
            ids += (
                await session.scalars(
                    insert(table).returning(table.c.id, sort_by_parameter_order=True),
                    list(batch),
                )
            ).all()
        return ids
    drawn = await session.scalars(
        text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
        {"t": table.name, "n": len(rows)},
    )
    ids = sorted(drawn.all())
    await insert_rows(session, table, [{"id": i, **row} for i, row in zip(ids, rows, strict=True)])
    return ids


async def record_timeline(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Timeline rows (``audit.customer_event_row``) and the webhook events they are."""
    await insert_rows(session, AuditEvent, rows)
    await insert_rows(session, WebhookEvent, [e for r in rows if (e := webhooks.from_timeline(r))])


async def record_ownership(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Ownership history rows (as ``ownership.record`` writes them) and their webhook events."""
    await insert_rows(session, OwnershipEvent, rows)
    outbox = [
        webhooks.from_ownership(
            r["customer_id"],
            r["action"],
            r["from_owner_id"],
            r["to_owner_id"],
            r["pool_id"],
            r["actor_id"],
            r["at"],
        )
        for r in rows
    ]
    await insert_rows(session, WebhookEvent, [e for e in outbox if e is not None])
