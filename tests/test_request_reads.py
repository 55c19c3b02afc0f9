"""Requests that only read (GET, HEAD): on PostgreSQL without BEGIN and COMMIT, and never a
write (ADR 0013)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from app.db import READ_ONLY, WriteInReadOnlyRequest
from app.models import NumberSequence, Tag
from tests.factories import auth, backends_in_a_transaction, make_org


def postgresql_only(app) -> None:
    if app.state.engine.dialect.name != "postgresql":
        assert app.state.read_options == READ_ONLY  # SQLite: a deferred BEGIN, no write lock
        pytest.skip("SQLite has no round trips to save: reads keep their transaction")


async def test_a_read_runs_each_statement_on_its_own(app, maker):
    postgresql_only(app)
    async with maker() as session, session.begin():
        connection = await session.connection(execution_options=app.state.read_options)
        # Inside one transaction both statements would see the same transaction id.
        first = await connection.scalar(text("SELECT pg_current_xact_id()"))
        second = await connection.scalar(text("SELECT pg_current_xact_id()"))
    assert first != second


async def test_a_write_in_a_read_is_refused_and_stores_nothing(app, maker):
    postgresql_only(app)
    org = await make_org(maker)
    async with maker() as session:
        with pytest.raises(WriteInReadOnlyRequest):
            async with session.begin():
                await session.connection(execution_options=app.state.read_options)
                await session.execute(
                    text("UPDATE users SET display_name = 'x' WHERE id = :id"), {"id": org.rep_a.id}
                )
        with pytest.raises(WriteInReadOnlyRequest):
            async with session.begin():
                await session.connection(execution_options=app.state.read_options)
                session.add(Tag(name="不该有", group_id=None))
                await session.flush()
    async with maker() as session:
        assert await session.scalar(select(func.count()).select_from(Tag)) == 0
        names = await session.scalars(text("SELECT display_name FROM users"))
        assert "x" not in set(names)


async def test_reading_the_numbering_creates_no_sequence(app, client, maker):
    org = await make_org(maker)
    shown = await client.get("/api/v1/number-sequences/contract", headers=auth(app, org.rep_a))
    assert shown.status_code == 200, shown.text
    assert shown.json()["prefix"] == "HT"
    async with maker() as session:
        assert await session.scalar(select(func.count()).select_from(NumberSequence)) == 0


async def test_a_read_that_fails_leaves_no_statement_open(app, client, maker):
    postgresql_only(app)
    org = await make_org(maker)
    # asyncpg cannot encode the id: the statement was sent, its Sync never was.
    huge = -8328421318030812774400
    answer = await client.get(
        f"/api/v1/opportunities?customer_id={huge}", headers=auth(app, org.rep_a)
    )
    assert answer.status_code == 422, answer.text
    # Its locks would block a TRUNCATE or a migration until the connection was reused.
    assert await backends_in_a_transaction(app.state.engine.url) == 0
