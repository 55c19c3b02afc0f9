"""Rate limits per user and per API key (SPEC J3): headers, 429 problems, shared by processes."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient

import app.deps
from app.config import Settings
from app.main import create_app
from app.services.rate_limits import window_of
from tests.factories import auth

LIMITS = {"rate_limit_user_per_minute": 3, "rate_limit_key_per_minute": 5}
# Far from a minute's end, so that a test's requests fall in one window.
NOON = dt.datetime(2026, 12, 2, 12, 0, 5, tzinfo=dt.UTC)


@asynccontextmanager
async def limited_app(settings: Settings) -> AsyncIterator[tuple[Any, AsyncClient]]:
    """Another app process on the same database, with low limits."""
    application = create_app(settings.model_copy(update=LIMITS))
    async with application.router.lifespan_context(application):
        transport = ASGITransport(app=application)
        async with AsyncClient(transport=transport, base_url="http://limited") as client:
            yield application, client
    await application.state.engine.dispose()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[dt.datetime]:
    now = [NOON]
    monkeypatch.setattr(app.deps, "utcnow", lambda: now[0])
    return now


async def test_a_user_gets_their_quota_then_a_429(app, settings, org, clock):
    async with limited_app(settings) as (limited, client):
        headers = auth(limited, org.rep_a)
        seen = []
        for _ in range(3):
            response = await client.get("/api/v1/customers", headers=headers)
            assert response.status_code == 200, response.text
            seen.append(response.headers["RateLimit-Remaining"])
            assert response.headers["RateLimit-Limit"] == "3"
            assert response.headers["RateLimit-Policy"] == "3;w=60"
            assert response.headers["RateLimit-Reset"] == "55"
        assert seen == ["2", "1", "0"]
        refused = await client.post("/api/v1/customers", json={"name": "多的"}, headers=headers)
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.headers["Retry-After"] == "55"
        assert refused.headers["RateLimit-Remaining"] == "0"
        assert refused.json()["status"] == 429
        # Someone else has their own quota; the refused write changed nothing.
        other = await client.get("/api/v1/customers", headers=auth(limited, org.admin))
        assert other.status_code == 200
        assert other.json()["items"] == []
        # The next minute starts afresh.
        clock[0] = NOON + dt.timedelta(minutes=1)
        again = await client.get("/api/v1/customers", headers=headers)
        assert again.status_code == 200
        assert again.headers["RateLimit-Remaining"] == "2"


async def test_an_api_key_has_its_own_quota(app, client, settings, org, clock):
    created = await client.post(
        "/api/v1/api-keys",
        json={"name": "POS", "scopes": ["customers:read"]},
        headers=auth(app, org.admin),
    )
    token = created.json()["token"]
    async with limited_app(settings) as (limited, limited_client):
        key = {"Authorization": f"Bearer {token}"}
        codes = [
            (await limited_client.get("/api/v1/customers", headers=key)).status_code
            for _ in range(6)
        ]
        assert codes == [200] * 5 + [429]
        # The acting user's own sign-in is counted apart.
        own = await limited_client.get("/api/v1/customers", headers=auth(limited, org.admin))
        assert own.status_code == 200
        assert own.headers["RateLimit-Limit"] == "3"


async def test_worker_processes_share_the_count(app, settings, org, clock):
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("an SQLite deployment is one process; its count lives in memory")
    async with limited_app(settings) as (first, one), limited_app(settings) as (second, two):
        assert first.state.rate_limiter is not second.state.rate_limiter
        codes = []
        for client, application in ((one, first), (two, second), (one, first), (two, second)):
            response = await client.get("/api/v1/customers", headers=auth(application, org.rep_b))
            codes.append(response.status_code)
        assert codes == [200, 200, 200, 429]


def test_windows_are_whole_minutes():
    start, reset = window_of(dt.datetime(2026, 12, 2, 12, 34, 59, 500_000, tzinfo=dt.UTC))
    assert start == dt.datetime(2026, 12, 2, 12, 34, tzinfo=dt.UTC)
    assert reset == 1
    assert window_of(dt.datetime(2026, 12, 2, 12, 35, tzinfo=dt.UTC)) == (
        dt.datetime(2026, 12, 2, 12, 35, tzinfo=dt.UTC),
        60,
    )
