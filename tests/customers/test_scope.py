"""Data scope on every customer and contact route (SPEC A3; DESIGN reliability rule 1)."""

from __future__ import annotations

import datetime as dt

import pytest

from app.models import Contact, Customer
from tests.factories import add_team_member, auth, make_contact, make_customer, make_org


@pytest.fixture
async def world(maker):
    org = await make_org(maker)
    customers = {
        "a": await make_customer(maker, org.rep_a, "甲公司"),
        "b": await make_customer(maker, org.rep_b, "乙公司"),
        "c": await make_customer(maker, org.rep_c, "丙公司"),
        "d": await make_customer(maker, org.rep_d, "丁公司"),
        "pool": await make_customer(maker, None, "无主公司"),
    }
    contacts = {k: await make_contact(maker, c, f"联系人{k}") for k, c in customers.items()}
    return org, customers, contacts


async def visible_ids(app, client, user):
    response = await client.get("/api/v1/customers", headers=auth(app, user))
    assert response.status_code == 200
    return {c["id"] for c in response.json()["items"]}


async def test_rep_sees_only_own_customers(app, client, world):
    org, customers, _ = world
    assert await visible_ids(app, client, org.rep_a) == {customers["a"].id}


async def test_manager_sees_department_and_children(app, client, world):
    org, customers, _ = world
    expected = {customers[k].id for k in ("a", "b", "c")}
    assert await visible_ids(app, client, org.mgr_east) == expected


async def test_sub_department_manager_sees_only_subtree(app, client, world):
    org, customers, _ = world
    assert await visible_ids(app, client, org.mgr_hz) == {customers["c"].id}


async def test_admin_sees_all(app, client, world):
    org, customers, _ = world
    assert await visible_ids(app, client, org.admin) == {c.id for c in customers.values()}


async def test_department_scope_excludes_children(app, client, maker, db, world):
    org, customers, _ = world
    role = await db.get(type(org.roles["manager"]), org.roles["manager"].id)
    role.scopes = {"customer": "department"}
    await db.commit()
    assert await visible_ids(app, client, org.mgr_east) == {customers["a"].id, customers["b"].id}


async def test_own_and_subordinates_follows_managed_departments(app, client, db, world):
    org, customers, _ = world
    role = await db.get(type(org.roles["manager"]), org.roles["manager"].id)
    role.scopes = {"customer": "own_and_subordinates"}
    await db.commit()
    assert await visible_ids(app, client, org.mgr_hz) == {customers["c"].id}
    assert await visible_ids(app, client, org.mgr_east) == {customers[k].id for k in "abc"}


async def test_team_member_reads_but_cannot_edit_with_read_access(app, client, maker, world):
    org, customers, _ = world
    await add_team_member(maker, customers["b"], org.rep_a, "read")
    assert await visible_ids(app, client, org.rep_a) == {customers["a"].id, customers["b"].id}
    read = await client.get(f"/api/v1/customers/{customers['b'].id}", headers=auth(app, org.rep_a))
    assert read.status_code == 200
    patch = await client.patch(
        f"/api/v1/customers/{customers['b'].id}",
        json={"level": "A"},
        headers={**auth(app, org.rep_a), "If-Match": read.headers["ETag"]},
    )
    assert patch.status_code == 403


async def test_team_member_with_write_access_edits(app, client, maker, world):
    org, customers, _ = world
    await add_team_member(maker, customers["b"], org.rep_a, "write")
    read = await client.get(f"/api/v1/customers/{customers['b'].id}", headers=auth(app, org.rep_a))
    patch = await client.patch(
        f"/api/v1/customers/{customers['b'].id}",
        json={"level": "A"},
        headers={**auth(app, org.rep_a), "If-Match": read.headers["ETag"]},
    )
    assert patch.status_code == 200 and patch.json()["level"] == "A"


async def test_expired_team_membership_grants_nothing(app, client, maker, world):
    org, customers, _ = world
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    await add_team_member(maker, customers["b"], org.rep_a, "write", expires_at=past)
    assert await visible_ids(app, client, org.rep_a) == {customers["a"].id}
    response = await client.get(
        f"/api/v1/customers/{customers['b'].id}", headers=auth(app, org.rep_a)
    )
    assert response.status_code == 404


OUTSIDE = [("rep_a", "b"), ("rep_a", "pool"), ("mgr_hz", "a"), ("mgr_east", "d"), ("rep_d", "c")]


@pytest.mark.parametrize(("who", "target"), OUTSIDE)
async def test_customer_outside_scope_is_404_and_unchanged(app, client, db, world, who, target):
    org, customers, _ = world
    user = getattr(org, who)
    customer = customers[target]
    headers = {**auth(app, user), "If-Match": '"1"'}
    url = f"/api/v1/customers/{customer.id}"
    responses = [
        await client.get(url, headers=headers),
        await client.patch(url, json={"name": "hijacked"}, headers=headers),
        await client.delete(url, headers=headers),
        await client.get(f"{url}/timeline", headers=headers),
        await client.get(f"{url}/contacts", headers=headers),
        await client.post(f"{url}/contacts", json={"name": "intruder"}, headers=headers),
    ]
    assert [r.status_code for r in responses] == [404] * 6
    assert all(r.json()["type"].endswith("/not-found") for r in responses)
    fresh = await db.get(Customer, customer.id)
    assert fresh.name == customer.name and fresh.deleted_at is None and fresh.version == 1


@pytest.mark.parametrize(("who", "target"), OUTSIDE)
async def test_contact_outside_scope_is_404_and_unchanged(app, client, db, world, who, target):
    org, _, contacts = world
    contact = contacts[target]
    headers = {**auth(app, getattr(org, who)), "If-Match": '"1"'}
    url = f"/api/v1/contacts/{contact.id}"
    responses = [
        await client.get(url, headers=headers),
        await client.patch(url, json={"name": "hijacked"}, headers=headers),
        await client.delete(url, headers=headers),
    ]
    assert [r.status_code for r in responses] == [404] * 3
    fresh = await db.get(Contact, contact.id)
    assert fresh.name == contact.name and fresh.deleted_at is None


@pytest.mark.parametrize(("who", "target"), [("rep_a", "a"), ("mgr_east", "c"), ("admin", "d")])
async def test_customer_inside_scope_can_be_read_edited_and_deleted(
    app, client, world, who, target
):
    org, customers, contacts = world
    user = getattr(org, who)
    url = f"/api/v1/customers/{customers[target].id}"
    read = await client.get(url, headers=auth(app, user))
    assert read.status_code == 200
    patch = await client.patch(
        url, json={"city": "杭州市"}, headers={**auth(app, user), "If-Match": read.headers["ETag"]}
    )
    assert patch.status_code == 200
    contact = await client.get(f"/api/v1/contacts/{contacts[target].id}", headers=auth(app, user))
    assert contact.status_code == 200
    if user.username == "rep_a":  # reps may not delete
        deleted = await client.delete(
            url, headers={**auth(app, user), "If-Match": patch.headers["ETag"]}
        )
        assert deleted.status_code == 403
    else:
        deleted = await client.delete(
            url, headers={**auth(app, user), "If-Match": patch.headers["ETag"]}
        )
        assert deleted.status_code == 204
        assert (await client.get(url, headers=auth(app, user))).status_code == 404


async def test_search_and_duplicates_respect_scope(app, client, world):
    org, customers, _ = world
    found = await client.get(
        "/api/v1/customers", params={"q": "乙公司"}, headers=auth(app, org.rep_a)
    )
    assert found.json()["items"] == []
    dupes = await client.get(
        "/api/v1/customers/duplicates", params={"name": "乙公司"}, headers=auth(app, org.rep_a)
    )
    [match] = dupes.json()["matches"]
    assert match["visible"] is False and match["id"] is None and match["name"] != "乙公司"
    own = await client.get(
        "/api/v1/customers/duplicates", params={"name": "乙公司"}, headers=auth(app, org.rep_b)
    )
    assert own.json()["matches"][0]["id"] == customers["b"].id


async def test_rep_cannot_assign_new_customer_to_someone_outside_scope(app, client, world, db):
    org, _, _ = world
    response = await client.post(
        "/api/v1/customers",
        json={"name": "新客户", "owner_id": org.rep_b.id},
        headers=auth(app, org.rep_a),
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "owner_id"]
    manager = await client.post(
        "/api/v1/customers",
        json={"name": "新客户", "owner_id": org.rep_b.id},
        headers=auth(app, org.mgr_east),
    )
    assert manager.status_code == 201 and manager.json()["owner"]["id"] == org.rep_b.id


async def test_many_team_memberships_fall_back_to_a_subquery(
    app, client, maker, world, monkeypatch
):
    from app import access

    org, customers, _ = world
    await add_team_member(maker, customers["b"], org.rep_a, "write")
    await add_team_member(maker, customers["c"], org.rep_a, "read")
    monkeypatch.setattr(access, "TEAM_IDS_INLINE_LIMIT", 1)
    assert await visible_ids(app, client, org.rep_a) == {customers[k].id for k in "abc"}
    read_only = await client.get(
        f"/api/v1/customers/{customers['c'].id}", headers=auth(app, org.rep_a)
    )
    patch = await client.patch(
        f"/api/v1/customers/{customers['c'].id}",
        json={"level": "A"},
        headers={**auth(app, org.rep_a), "If-Match": read_only.headers["ETag"]},
    )
    assert patch.status_code == 403
    writable = await client.get(
        f"/api/v1/customers/{customers['b'].id}", headers=auth(app, org.rep_a)
    )
    patch = await client.patch(
        f"/api/v1/customers/{customers['b'].id}",
        json={"level": "A"},
        headers={**auth(app, org.rep_a), "If-Match": writable.headers["ETag"]},
    )
    assert patch.status_code == 200
