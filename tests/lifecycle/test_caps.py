"""Caps on owned and locked customers, configured on roles and users (SPEC B7)."""

from __future__ import annotations

from app.services import ownership
from tests.factories import auth


async def test_role_caps_are_created_changed_and_cleared(app, client, org):
    admin = auth(app, org.admin)
    created = await client.post(
        "/api/v1/roles",
        json={"name": "见习", "max_owned_customers": 50, "max_locked_customers": 5},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    role = created.json()
    assert (role["max_owned_customers"], role["max_locked_customers"]) == (50, 5)
    url = f"/api/v1/roles/{role['id']}"
    changed = await client.patch(
        url, json={"max_locked_customers": 8}, headers={**admin, "If-Match": '"1"'}
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["max_owned_customers"], changed.json()["max_locked_customers"]) == (
        50,
        8,
    )
    cleared = await client.patch(
        url, json={"max_owned_customers": None}, headers={**admin, "If-Match": '"2"'}
    )
    assert cleared.status_code == 200 and cleared.json()["max_owned_customers"] is None
    bad = await client.patch(
        url, json={"max_owned_customers": -1}, headers={**admin, "If-Match": '"3"'}
    )
    assert bad.status_code == 422


async def test_user_caps_override_the_roles(app, client, maker, org):
    admin = auth(app, org.admin)
    rep_role = org.roles["rep"]
    await client.patch(
        f"/api/v1/roles/{rep_role.id}",
        json={"max_owned_customers": 100, "max_locked_customers": 10},
        headers={**admin, "If-Match": '"1"'},
    )
    created = await client.post(
        "/api/v1/users",
        json={
            "username": "capped",
            "display_name": "有上限",
            "password": "long enough pw",
            "role_ids": [rep_role.id],
            "max_owned_customers": 20,
        },
        headers=admin,
    )
    assert created.status_code == 201, created.text
    user = created.json()
    assert (user["max_owned_customers"], user["max_locked_customers"]) == (20, None)
    async with maker() as session:
        assert await ownership.caps(session, user["id"]) == (20, 10)
    changed = await client.patch(
        f"/api/v1/users/{user['id']}",
        json={"max_owned_customers": None, "max_locked_customers": 3},
        headers={**admin, "If-Match": f'"{user["version"]}"'},
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["max_owned_customers"], changed.json()["max_locked_customers"]) == (
        None,
        3,
    )
    async with maker() as session:
        assert await ownership.caps(session, user["id"]) == (100, 3)
    listed = await client.get("/api/v1/users", headers=admin)
    assert any(u["max_locked_customers"] == 3 for u in listed.json())
