"""Organisation admin: users, departments, roles (SPEC A3)."""

from __future__ import annotations

import pytest

from tests.factories import PASSWORD, auth, make_customer, make_org


@pytest.fixture
async def org(maker):
    return await make_org(maker)


ADMIN_ROUTES = [
    ("GET", "/api/v1/users"),
    ("POST", "/api/v1/users"),
    ("GET", "/api/v1/users/1"),
    ("PATCH", "/api/v1/users/1"),
    ("GET", "/api/v1/departments"),
    ("POST", "/api/v1/departments"),
    ("GET", "/api/v1/departments/1"),
    ("PATCH", "/api/v1/departments/1"),
    ("DELETE", "/api/v1/departments/1"),
    ("GET", "/api/v1/roles"),
    ("POST", "/api/v1/roles"),
    ("GET", "/api/v1/roles/1"),
    ("PATCH", "/api/v1/roles/1"),
    ("DELETE", "/api/v1/roles/1"),
]


@pytest.mark.parametrize(("method", "url"), ADMIN_ROUTES)
async def test_non_admins_are_refused(app, client, org, method, url):
    for user in (org.rep_a, org.mgr_east):
        response = await client.request(
            method, url, json={}, headers={**auth(app, user), "If-Match": '"1"'}
        )
        assert response.status_code == 403, (user.username, method, url)
    assert (await client.request(method, url, json={})).status_code == 401


async def test_admin_creates_user_who_can_log_in(app, client, org):
    body = {
        "username": "New.Rep",
        "display_name": "新人",
        "password": "long enough pw",
        "department_id": org.south.id,
        "role_ids": [org.roles["rep"].id],
    }
    created = await client.post("/api/v1/users", json=body, headers=auth(app, org.admin))
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["username"] == "new.rep" and user["roles"] == [
        {"id": org.roles["rep"].id, "name": "rep"}
    ]
    assert "password" not in user and "password_hash" not in user
    login = await client.post(
        "/api/v1/auth/token", data={"username": "new.rep", "password": "long enough pw"}
    )
    assert login.status_code == 200
    taken = await client.post("/api/v1/users", json=body, headers=auth(app, org.admin))
    assert taken.status_code == 409


async def test_user_validation(app, client, org):
    for bad in (
        {"username": "x", "display_name": "d", "password": "long enough"},
        {"username": "ok_name", "display_name": "d", "password": "short"},
        {"username": "ok_name", "display_name": "d", "password": "long enough", "role_ids": [999]},
        {
            "username": "ok_name",
            "display_name": "d",
            "password": "long enough",
            "department_id": 999,
        },
        {"username": "ok_name", "display_name": "d", "password": "long enough", "is_admin": True},
    ):
        response = await client.post("/api/v1/users", json=bad, headers=auth(app, org.admin))
        assert response.status_code == 422, bad


async def test_deactivating_a_user_who_owns_customers_is_refused(app, client, maker, org):
    await make_customer(maker, org.rep_a, "还有客户")
    url = f"/api/v1/users/{org.rep_a.id}"
    version = (await client.get(url, headers=auth(app, org.admin))).headers["ETag"]
    response = await client.patch(
        url, json={"is_active": False}, headers={**auth(app, org.admin), "If-Match": version}
    )
    assert response.status_code == 409


async def test_password_change_revokes_refresh_tokens(app, client, org):
    tokens = (
        await client.post("/api/v1/auth/token", data={"username": "rep_b", "password": PASSWORD})
    ).json()
    url = f"/api/v1/users/{org.rep_b.id}"
    version = (await client.get(url, headers=auth(app, org.admin))).headers["ETag"]
    changed = await client.patch(
        url,
        json={"password": "a brand new pw"},
        headers={**auth(app, org.admin), "If-Match": version},
    )
    assert changed.status_code == 200
    assert (
        await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    ).status_code == 401


async def test_moving_a_department_moves_its_subtree_and_scope(app, client, maker, org):
    c = await make_customer(maker, org.rep_c, "杭州客户")
    url = f"/api/v1/departments/{org.hz.id}"
    version = (await client.get(url, headers=auth(app, org.admin))).headers["ETag"]
    moved = await client.patch(
        url, json={"parent_id": org.south.id}, headers={**auth(app, org.admin), "If-Match": version}
    )
    assert moved.status_code == 200
    assert moved.json()["path"] == f"/{org.south.id}/{org.hz.id}/"
    east_view = (await client.get("/api/v1/customers", headers=auth(app, org.mgr_east))).json()[
        "items"
    ]
    assert c.id not in [x["id"] for x in east_view]


async def test_department_cannot_move_under_itself(app, client, org):
    url = f"/api/v1/departments/{org.east.id}"
    version = (await client.get(url, headers=auth(app, org.admin))).headers["ETag"]
    response = await client.patch(
        url, json={"parent_id": org.hz.id}, headers={**auth(app, org.admin), "If-Match": version}
    )
    assert response.status_code == 422


async def test_department_with_users_cannot_be_deleted(app, client, org):
    url = f"/api/v1/departments/{org.south.id}"
    version = (await client.get(url, headers=auth(app, org.admin))).headers["ETag"]
    assert (
        await client.delete(url, headers={**auth(app, org.admin), "If-Match": version})
    ).status_code == 409
    empty = (
        await client.post(
            "/api/v1/departments",
            json={"name": "空部门", "parent_id": org.south.id},
            headers=auth(app, org.admin),
        )
    ).json()
    assert empty["path"] == f"/{org.south.id}/{empty['id']}/"
    etag = f'"{empty["version"]}"'
    gone = await client.delete(
        f"/api/v1/departments/{empty['id']}", headers={**auth(app, org.admin), "If-Match": etag}
    )
    assert gone.status_code == 204


async def test_roles_validate_permissions_and_scopes(app, client, org):
    good = {
        "name": "区域经理",
        "permissions": ["customer.create"],
        "scopes": {"customer": "department"},
    }
    created = await client.post("/api/v1/roles", json=good, headers=auth(app, org.admin))
    assert created.status_code == 201 and created.json()["scopes"] == {"customer": "department"}
    for bad in (
        {"name": "x", "permissions": ["launch.missiles"]},
        {"name": "x", "scopes": {"customer": "galaxy"}},
        {"name": "x", "scopes": {"planets": "all"}},
    ):
        assert (
            await client.post("/api/v1/roles", json=bad, headers=auth(app, org.admin))
        ).status_code == 422
    in_use = await client.delete(
        f"/api/v1/roles/{org.roles['rep'].id}", headers={**auth(app, org.admin), "If-Match": '"1"'}
    )
    assert in_use.status_code == 409


async def test_widest_role_scope_wins(app, client, maker, org):
    d = await make_customer(maker, org.rep_d, "南方")
    url = f"/api/v1/users/{org.rep_a.id}"
    version = (await client.get(url, headers=auth(app, org.admin))).headers["ETag"]
    both = [org.roles["rep"].id, org.roles["admin"].id]
    await client.patch(
        url, json={"role_ids": both}, headers={**auth(app, org.admin), "If-Match": version}
    )
    me = (await client.get("/api/v1/me", headers=auth(app, org.rep_a))).json()
    assert me["scopes"] == {"customer": "all"}
    assert d.id in [
        c["id"]
        for c in (await client.get("/api/v1/customers", headers=auth(app, org.rep_a))).json()[
            "items"
        ]
    ]


async def test_directory_lists_active_colleagues_for_anyone_signed_in(app, client, org, db):
    assert (await client.get("/api/v1/users/directory")).status_code == 401
    user = await db.get(type(org.rep_d), org.rep_d.id)
    assert user is not None
    user.is_active = False
    await db.commit()
    response = await client.get("/api/v1/users/directory", headers=auth(app, org.mgr_east))
    assert response.status_code == 200, response.text
    entries = {e["id"]: e for e in response.json()}
    assert org.rep_d.id not in entries and org.admin.id in entries
    # The manager's scope (East and its children) covers rep_c in Hangzhou, not the admin.
    assert entries[org.rep_c.id]["in_scope"] is True
    assert entries[org.rep_c.id]["department"]["name"] == "Hangzhou"
    assert entries[org.admin.id]["in_scope"] is False
    found = await client.get(
        "/api/v1/users/directory", params={"q": "Rep C"}, headers=auth(app, org.rep_a)
    )
    assert [e["id"] for e in found.json()] == [org.rep_c.id]


async def test_text_with_nul_is_invalid_input(app, client, org):
    """PostgreSQL cannot store U+0000: a name with it was a 500 there (found by Schemathesis)."""
    response = await client.post(
        "/api/v1/departments", json={"name": "销售\u0000部"}, headers=auth(app, org.admin)
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
