"""Pooled connections the database closed are replaced before a request uses them."""

from __future__ import annotations

import asyncio

import asyncpg  # type: ignore[import-untyped]
import pytest

from tests.factories import auth, driver_dsn, make_org


async def test_a_connection_the_database_closed_is_replaced_before_use(app, client, maker):
    engine = app.state.engine
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no server to close connections")
    org = await make_org(maker)
    headers = auth(app, org.rep_a)
    # Several requests at once: the pool holds several connections afterwards.
    answers = await asyncio.gather(*(client.get("/api/v1/me", headers=headers) for _ in range(4)))
    assert all(a.status_code == 200 for a in answers)
    assert engine.pool.checkedin() >= 2
    killer = await asyncpg.connect(driver_dsn(engine.url))
    try:
        killed = await killer.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend'"
        )
    finally:
        await killer.close()
    assert killed >= 2
    await asyncio.sleep(0.3)  # the closed sockets reach the pooled connections
    answers = await asyncio.gather(*(client.get("/api/v1/me", headers=headers) for _ in range(4)))
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]


class _CountingMaker:
    """A session factory that counts the sessions open at once (each takes a moment to open, so
    that requests sent together overlap)."""

    def __init__(self, maker):
        self.maker, self.active, self.most = maker, 0, 0

    def __call__(self):
        session, counter = self.maker(), self

        class Opened:
            async def __aenter__(self):
                counter.active += 1
                counter.most = max(counter.most, counter.active)
                await asyncio.sleep(0.02)
                return await session.__aenter__()

            async def __aexit__(self, *exc):
                try:
                    return await session.__aexit__(*exc)
                finally:
                    counter.active -= 1

        return Opened()


async def test_requests_beyond_the_slots_wait_their_turn(app, client, maker):
    org = await make_org(maker)
    headers = auth(app, org.rep_a)
    counting = _CountingMaker(app.state.sessionmaker)
    # Set and put back by hand: pytest's monkeypatch deletes what it cannot find in __dict__,
    # and app.state keeps its values elsewhere.
    kept = app.state.sessionmaker, app.state.db_slots
    app.state.sessionmaker, app.state.db_slots = counting, asyncio.Semaphore(2)
    try:
        answers = await asyncio.gather(
            *(client.get("/api/v1/me", headers=headers) for _ in range(6))
        )
    finally:
        app.state.sessionmaker, app.state.db_slots = kept
    assert [a.status_code for a in answers] == [200] * 6
    assert counting.most == 2  # all six overlapped, two at a time
    assert counting.active == 0
