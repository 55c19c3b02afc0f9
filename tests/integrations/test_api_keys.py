"""API keys (SPEC J1): made by admins, shown once, hashed, scoped, revocable, acting as a user."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pytest
from sqlalchemy import select, update

from app.models import ApiKey
from app.models.base import utcnow
from app.services.api_keys import SCOPES
from tests.factories import auth, make_customer

KEYS = "/api/v1/api-keys"


async def create(client, app, user, **body: Any) -> dict[str, Any]:
    payload = {"name": "ERP", "scopes": ["customers:read"], **body}
    response = await client.post(KEYS, json=payload, headers=auth(app, user))
    assert response.status_code == 201, response.text
    return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_secret_is_shown_once_and_only_its_hash_is_kept(app, client, maker, org):
    created = await create(client, app, org.admin, scopes=["customers:read", "orders:write"])
    token = created["token"]
    assert token.startswith(f"kehu_{created['prefix']}_")
    assert created["scopes"] == ["customers:read", "orders:write"]
    assert created["acting_user_id"] == org.admin.id
    listed = (await client.get(KEYS, headers=auth(app, org.admin))).json()
    assert [k["id"] for k in listed] == [created["id"]]
    assert "token" not in listed[0]
    async with maker() as session:
        stored = await session.scalar(select(ApiKey))
    assert stored is not None
    secret = token.removeprefix(f"kehu_{created['prefix']}_")
    assert stored.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in repr(stored.__dict__)


async def test_a_key_reads_what_its_acting_user_may_read(app, client, maker, org):
    mine = await make_customer(maker, org.rep_a, name="甲的客户")
    await make_customer(maker, org.rep_b, name="乙的客户")
    created = await create(client, app, org.admin, acting_user_id=org.rep_a.id)
    response = await client.get("/api/v1/customers", headers=bearer(created["token"]))
    assert response.status_code == 200, response.text
    assert [c["id"] for c in response.json()["items"]] == [mine.id]
    theirs = await client.get("/api/v1/customers?q=乙", headers=bearer(created["token"]))
    assert theirs.json()["items"] == []


async def test_a_key_needs_the_scope_of_each_endpoint(app, client, maker, org):
    customer = await make_customer(maker, org.admin, name="客户")
    token = (await create(client, app, org.admin, scopes=["customers:read"]))["token"]
    headers = bearer(token)
    assert (
        await client.get(f"/api/v1/customers/{customer.id}", headers=headers)
    ).status_code == 200
    write = await client.post("/api/v1/customers", json={"name": "新客户"}, headers=headers)
    assert write.status_code == 403
    assert write.headers["content-type"].startswith("application/problem+json")
    assert "customers:write" in write.json()["detail"]
    other = await client.get("/api/v1/opportunities", headers=headers)
    assert other.status_code == 403
    assert "opportunities:read" in other.json()["detail"]
    # Nothing was created by the refused write.
    listed = (await client.get("/api/v1/customers", headers=headers)).json()["items"]
    assert [c["name"] for c in listed] == ["客户"]


async def test_a_write_scope_allows_writes(app, client, org):
    token = (await create(client, app, org.admin, scopes=["customers:write"]))["token"]
    response = await client.post(
        "/api/v1/customers", json={"name": "接口客户"}, headers=bearer(token)
    )
    assert response.status_code == 201, response.text


async def test_keys_never_manage_keys(app, client, org):
    token = (await create(client, app, org.admin, scopes=list(SCOPES)))["token"]
    response = await client.get(KEYS, headers=bearer(token))
    assert response.status_code == 403
    made = await client.post(
        KEYS, json={"name": "x", "scopes": ["org:write"]}, headers=bearer(token)
    )
    assert made.status_code == 403


async def test_revoked_expired_and_wrong_keys_are_refused(app, client, maker, org):
    created = await create(client, app, org.admin)
    token = created["token"]
    assert (await client.get("/api/v1/customers", headers=bearer(token))).status_code == 200
    wrong = token[:-4] + ("aaaa" if not token.endswith("aaaa") else "bbbb")
    assert (await client.get("/api/v1/customers", headers=bearer(wrong))).status_code == 401
    revoked = await client.post(f"{KEYS}/{created['id']}/revoke", headers=auth(app, org.admin))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    refused = await client.get("/api/v1/customers", headers=bearer(token))
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("application/problem+json")

    later = await create(client, app, org.admin)
    async with maker() as session, session.begin():
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == later["id"])
            .values(expires_at=utcnow() - dt.timedelta(seconds=1))
        )
    assert (
        await client.get("/api/v1/customers", headers=bearer(later["token"]))
    ).status_code == 401


async def test_last_use_is_recorded(app, client, org):
    created = await create(client, app, org.admin)
    assert created["last_used_at"] is None
    await client.get("/api/v1/customers", headers=bearer(created["token"]))
    shown = (await client.get(f"{KEYS}/{created['id']}", headers=auth(app, org.admin))).json()
    assert shown["last_used_at"] is not None
    assert shown["last_used_from"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scopes": ["customers:delete"]}, "scopes"),
        ({"scopes": []}, "scopes"),
        ({"scopes": ["analytics:write"]}, "scopes"),
        ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"acting_user_id": 999_999}, "acting_user_id"),
    ],
)
async def test_bad_keys_are_refused_and_nothing_is_stored(app, client, maker, org, body, field):
    payload = {"name": "ERP", "scopes": ["customers:read"], **body}
    response = await client.post(KEYS, json=payload, headers=auth(app, org.admin))
    assert response.status_code == 422, response.text
    assert any(field in str(e) for e in response.json()["errors"])
    async with maker() as session:
        assert await session.scalar(select(ApiKey)) is None


async def test_only_integration_admins_manage_keys(app, client, org):
    for user in (org.rep_a, org.mgr_east):
        assert (await client.get(KEYS, headers=auth(app, user))).status_code == 403
        made = await client.post(
            KEYS, json={"name": "x", "scopes": ["customers:read"]}, headers=auth(app, user)
        )
        assert made.status_code == 403
    assert (await client.get(KEYS)).status_code == 401
    assert (await client.get(f"{KEYS}/1", headers=auth(app, org.admin))).status_code == 404


async def test_every_endpoint_declares_the_scope_a_key_needs(client):
    document = (await client.get("/api/v1/openapi.json")).json()
    undeclared = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if {"auth", "operations"} & set(operation["tags"]):
                continue  # signing in, and health checks
            if "x-api-key-scope" not in operation:
                undeclared.append(f"{method.upper()} {path}")
                continue
            needed = operation["x-api-key-scope"]
            if path.startswith(
                ("/api/v1/api-keys", "/api/v1/webhook", "/api/v1/personal-data-log")
            ) or path.endswith(("/field-permissions", "/personal-data", "/erase")):
                # Managing integrations, field levels and personal data: signed-in users only.
                assert needed is False
                assert "Not for API keys" in operation["description"]
                continue
            assert needed in SCOPES, (path, needed)
            access = "read" if method == "get" else "write"
            assert needed.endswith(access) or needed == "analytics:read", (method, path, needed)
            assert needed in operation["description"]
    assert undeclared == []


async def test_a_retried_write_with_a_key_is_replayed_not_repeated(app, client, maker, org):
    token = (await create(client, app, org.admin, scopes=["customers:write"]))["token"]
    headers = {**bearer(token), "Idempotency-Key": "erp-sync-42"}
    first = await client.post("/api/v1/customers", json={"name": "幂等客户"}, headers=headers)
    again = await client.post("/api/v1/customers", json={"name": "幂等客户"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    listed = await client.get("/api/v1/customers", headers=auth(app, org.admin))
    assert [c["name"] for c in listed.json()["items"]] == ["幂等客户"]
