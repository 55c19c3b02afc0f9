"""Idempotency-Key on POST (SPEC A4)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select, update

from app.models import Customer, IdempotencyRecord
from app.services.idempotency import request_fingerprint
from tests.factories import auth, make_org


@pytest.fixture
async def org(maker):
    return await make_org(maker)


async def post(client, app, user, body, key):
    return await client.post(
        "/api/v1/customers", json=body, headers={**auth(app, user), "Idempotency-Key": key}
    )


async def test_same_key_and_body_replays_the_stored_response(app, client, org, db):
    first = await post(client, app, org.rep_a, {"name": "幂等公司"}, "key-1")
    second = await post(client, app, org.rep_a, {"name": "幂等公司"}, "key-1")
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["ETag"] == first.headers["ETag"]
    assert second.headers["Location"] == first.headers["Location"]
    assert await db.scalar(select(func.count()).select_from(Customer)) == 1


async def test_same_key_with_another_body_is_422(app, client, org, db):
    await post(client, app, org.rep_a, {"name": "A公司"}, "key-2")
    other = await post(client, app, org.rep_a, {"name": "B公司"}, "key-2")
    assert other.status_code == 422
    assert other.json()["type"].endswith("/idempotency-key-reused")
    assert await db.scalar(select(func.count()).select_from(Customer)) == 1


async def test_keys_are_per_caller(app, client, org, db):
    await post(client, app, org.rep_a, {"name": "甲公司"}, "shared")
    theirs = await post(client, app, org.rep_b, {"name": "乙公司"}, "shared")
    assert theirs.status_code == 201 and "Idempotent-Replayed" not in theirs.headers


async def test_key_in_flight_is_409(app, client, org, db):
    body = '{"name":"忙"}'.encode()
    now = dt.datetime.now(dt.UTC)
    db.add(
        IdempotencyRecord(
            caller=f"user:{org.rep_a.id}",
            key="busy",
            method="POST",
            path="/api/v1/customers",
            request_hash=request_fingerprint("POST", "/api/v1/customers", "", body),
            state="in_flight",
            created_at=now,
            expires_at=now + dt.timedelta(hours=1),
        )
    )
    await db.commit()
    response = await client.post(
        "/api/v1/customers",
        content=body,
        headers={
            **auth(app, org.rep_a),
            "Idempotency-Key": "busy",
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 409
    assert response.json()["type"].endswith("/idempotency-in-flight")
    assert await db.scalar(select(func.count()).select_from(Customer)) == 0


async def test_concurrent_requests_with_one_key_create_once(app, client, org, db):
    results = await asyncio.gather(
        *(post(client, app, org.rep_a, {"name": "并发公司"}, "race") for _ in range(5))
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}
    assert await db.scalar(select(func.count()).select_from(Customer)) == 1
    created = [r for r in results if r.status_code == 201]
    assert len({r.json()["id"] for r in created}) == 1


async def test_error_responses_are_replayed_too(app, client, org, db):
    first = await post(client, app, org.rep_a, {"name": ""}, "bad")
    again = await post(client, app, org.rep_a, {"name": ""}, "bad")
    assert first.status_code == again.status_code == 422
    assert again.headers.get("Idempotent-Replayed") == "true"


async def test_stale_in_flight_claim_is_taken_over(app, client, org, db):
    first = await post(client, app, org.rep_a, {"name": "接管"}, "stale")
    assert first.status_code == 201
    # Simulate a process that died after claiming: the row is in flight and old.
    await db.execute(
        update(IdempotencyRecord).values(
            state="in_flight", created_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        )
    )
    await db.commit()
    retry = await post(client, app, org.rep_a, {"name": "接管2"}, "stale")
    assert retry.status_code == 422  # another body still conflicts with the key's request
    same = await post(client, app, org.rep_a, {"name": "接管"}, "stale")
    assert same.status_code == 409  # duplicate check: the first create did commit


async def test_bad_key_is_rejected(app, client, org):
    response = await post(client, app, org.rep_a, {"name": "x"}, "k" * 300)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]


async def test_expired_keys_are_purged_and_can_be_reused(app, client, org, db, maker):
    from app.services.idempotency import purge_expired

    first = await post(client, app, org.rep_a, {"name": "过期键"}, "old-key")
    await db.execute(
        update(IdempotencyRecord).values(
            expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        )
    )
    await db.commit()
    assert await purge_expired(maker) == 1
    again = await post(client, app, org.rep_a, {"name": "过期键2"}, "old-key")
    assert first.status_code == again.status_code == 201
    assert "Idempotent-Replayed" not in again.headers
