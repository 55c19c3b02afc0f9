"""Test fixtures: a real database made by Alembic, the real app, an HTTP client.

The database is SQLite in a temp file, or PostgreSQL when ``KEHU_TEST_DATABASE_URL`` is set.
The schema is migrated once per run; after each test every table is emptied, so tests are
isolated even though the app opens several transactions per request (auth, idempotency).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import PROJECT_ROOT, Settings
from app.db import READ_ONLY, Base, create_engine
from app.main import create_app

TEST_DB_URL = os.environ.get("KEHU_TEST_DATABASE_URL")


def alembic_config(url: str) -> Config:
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url
    cfg.attributes["configure_logging"] = False
    return cfg


def reset_schema(url: str) -> None:
    """Drop everything in the test database (PostgreSQL) so Alembic starts from empty."""
    if make_url(url).get_backend_name() != "postgresql":
        return

    async def drop() -> None:
        engine = create_engine(url)
        async with engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("DROP SCHEMA public CASCADE"))
            await autocommit.execute(text("CREATE SCHEMA public"))
        await engine.dispose()

    asyncio.run(drop())


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    if TEST_DB_URL:
        reset_schema(TEST_DB_URL)
        command.upgrade(alembic_config(TEST_DB_URL), "head")
        yield TEST_DB_URL
        return
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'test.db'}"
        command.upgrade(alembic_config(url), "head")
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key="test-secret-key-with-enough-entropy-0123456789",
        scheduler_enabled=False,
        spa_dir=Path("/nonexistent"),
        log_json=False,
        # The local test push service speaks plain http on loopback.
        push_allow_http=True,
        # Analytics answers reflect every change at once (no reuse window for loaded frames).
        analytics_refresh_seconds=0,
        # Tests empty the tables between them: frames kept on disk would outlive that.
        analytics_cache_dir=None,
        # One app serves the whole session, and ids restart with every test: the counts of
        # "user:1" would add up across tests (tests/integrations/test_rate_limits.py has its own).
        rate_limit_user_per_minute=0,
        rate_limit_key_per_minute=0,
        # Webhook receivers in tests listen on loopback over plain http (the production
        # refusals are tested with strict settings: tests/webhooks).
        webhooks_allow_http=True,
        webhooks_allow_private=True,
    )


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
def maker(app: Any) -> async_sessionmaker[AsyncSession]:
    result: async_sessionmaker[AsyncSession] = app.state.sessionmaker
    return result


@pytest.fixture(autouse=True)
async def _clean_tables(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    yield
    if "app" not in request.fixturenames:
        return
    app = request.getfixturevalue("app")
    app.state.analytics.clear()
    engine = app.state.engine
    # system_settings holds what the app generated at start-up (VAPID keys), access_stamp what
    # the app's principals were built under: keep them (emptying the other tables bumps it).
    kept = ("system_settings", "access_stamp")
    tables = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name not in kept]
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            await conn.execute(text("PRAGMA defer_foreign_keys=ON"))
            for table in tables:
                await conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608 (our table names)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
async def db(app: Any) -> AsyncIterator[AsyncSession]:
    """A session for arranging and checking data directly (commit explicitly).

    Its transactions begin deferred on SQLite, so a test holding one open does not block the app.
    """
    engine = app.state.engine.execution_options(**READ_ONLY)
    async with async_sessionmaker(engine, expire_on_commit=False)() as session:
        yield session
