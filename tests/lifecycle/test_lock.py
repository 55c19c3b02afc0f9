"""Locking customers against reclaim, with per-user caps (SPEC B7)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import AuditEvent, Customer
from app.models.base import utcnow
from tests.factories import add_team_member, auth, make_customer
from tests.lifecycle.conftest import put_in_bin, reload, rows, set_caps


def lock_url(customer, action="lock"):
    return f"/api/v1/customers/{customer.id}/{action}"


async def test_owner_locks_a_customer_and_gets_it_back(app, client, maker, org, db):
    customer = await make_customer(maker, org.rep_a, "锁定公司")
    response = await client.post(lock_url(customer), headers=auth(app, org.rep_a))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == customer.id and body["locked_at"] is not None
    assert response.headers["ETag"] == f'"{body["version"]}"' and body["version"] == 2
    row = await reload(db, Customer, customer.id)
    assert row.locked_at is not None and row.locked_by_id == org.rep_a.id
    actions = [a for (a,) in await rows(db, select(AuditEvent.action))]
    assert actions == ["locked"]


async def test_locking_twice_changes_nothing(app, client, maker, org, db):
    customer = await make_customer(maker, org.rep_a)
    first = (await client.post(lock_url(customer), headers=auth(app, org.rep_a))).json()
    again = await client.post(lock_url(customer), headers=auth(app, org.rep_a))
    assert again.status_code == 200
    assert again.json()["locked_at"] == first["locked_at"]
    assert again.json()["version"] == first["version"]
    assert len(await rows(db, select(AuditEvent.id).where(AuditEvent.action == "locked"))) == 1


async def test_unlock_clears_the_lock_and_is_idempotent(app, client, maker, org, db):
    customer = await make_customer(maker, org.rep_a)
    await client.post(lock_url(customer), headers=auth(app, org.rep_a))
    response = await client.post(lock_url(customer, "unlock"), headers=auth(app, org.rep_a))
    assert response.status_code == 200 and response.json()["locked_at"] is None
    again = await client.post(lock_url(customer, "unlock"), headers=auth(app, org.rep_a))
    assert again.status_code == 200 and again.json()["version"] == response.json()["version"]
    row = await reload(db, Customer, customer.id)
    assert row.locked_at is None and row.locked_by_id is None
    actions = [a for (a,) in await rows(db, select(AuditEvent.action).order_by(AuditEvent.id))]
    assert actions == ["locked", "unlocked"]


async def test_lock_refused_when_the_owners_locked_cap_is_reached(app, client, maker, org, db):
    await set_caps(maker, org.rep_a, locked=1)
    first = await make_customer(maker, org.rep_a)
    second = await make_customer(maker, org.rep_a)
    assert (await client.post(lock_url(first), headers=auth(app, org.rep_a))).status_code == 200
    refused = await client.post(lock_url(second), headers=auth(app, org.rep_a))
    assert refused.status_code == 409
    problem = refused.json()
    assert problem["type"].endswith("/cap-exceeded") and problem["cap"] == 1
    assert (await reload(db, Customer, second.id)).locked_at is None


async def test_the_owners_cap_applies_when_a_manager_locks(app, client, maker, org, db):
    await set_caps(maker, org.rep_a, locked=0)
    customer = await make_customer(maker, org.rep_a)
    refused = await client.post(lock_url(customer), headers=auth(app, org.mgr_east))
    assert refused.status_code == 409 and refused.json()["cap"] == 0


async def test_role_cap_applies_when_the_user_has_none(app, client, maker, org, db):
    async with maker() as session, session.begin():
        role = await session.get(type(org.roles["rep"]), org.roles["rep"].id)
        role.max_locked_customers = 1
    first, second = await make_customer(maker, org.rep_a), await make_customer(maker, org.rep_a)
    assert (await client.post(lock_url(first), headers=auth(app, org.rep_a))).status_code == 200
    assert (await client.post(lock_url(second), headers=auth(app, org.rep_a))).status_code == 409
    # A user's own cap overrides the role's.
    await set_caps(maker, org.rep_a, locked=5)
    assert (await client.post(lock_url(second), headers=auth(app, org.rep_a))).status_code == 200


async def test_customers_in_the_recycle_bin_do_not_count_against_the_cap(
    app, client, maker, org, db
):
    await set_caps(maker, org.rep_a, locked=1)
    binned = await make_customer(maker, org.rep_a, locked_at=utcnow())
    await put_in_bin(maker, binned)
    customer = await make_customer(maker, org.rep_a)
    assert (await client.post(lock_url(customer), headers=auth(app, org.rep_a))).status_code == 200


async def test_a_customer_without_owner_cannot_be_locked(app, client, maker, org):
    customer = await make_customer(maker, None, "无主公司")
    response = await client.post(lock_url(customer), headers=auth(app, org.admin))
    assert response.status_code == 409


@pytest.mark.parametrize("action", ["lock", "unlock"])
async def test_lock_routes_need_the_customer_writable(app, client, maker, org, db, action):
    customer = await make_customer(maker, org.rep_a)
    await add_team_member(maker, customer, org.rep_b, "read")
    url = lock_url(customer, action)
    assert (await client.post(url)).status_code == 401
    assert (await client.post(url, headers=auth(app, org.rep_d))).status_code == 404
    assert (await client.post(url, headers=auth(app, org.rep_b))).status_code == 403
    row = await reload(db, Customer, customer.id)
    assert row.locked_at is None and row.version == 1


async def test_a_write_member_may_lock(app, client, maker, org):
    customer = await make_customer(maker, org.rep_a)
    await add_team_member(maker, customer, org.rep_b, "write")
    response = await client.post(lock_url(customer), headers=auth(app, org.rep_b))
    assert response.status_code == 200 and response.json()["locked_at"] is not None


async def test_a_lock_racing_another_change_is_a_conflict_not_a_412(maker, org):
    """Locking takes no If-Match, so losing a race to another change is 409, not 412 (found by
    Schemathesis: two concurrent locks of one customer answered an undocumented 412)."""
    from app.errors import Conflict
    from app.services.versions import flush_versioned

    customer = await make_customer(maker, org.rep_a, "甲")
    async with maker() as session:
        mine = await session.get(Customer, customer.id)
        await session.commit()  # ends the read, so the other writer gets in on SQLite too
        async with maker() as other, other.begin():
            (await other.get(Customer, customer.id)).name = "甲二"
        mine.locked_at = utcnow()
        with pytest.raises(Conflict):
            await flush_versioned(session, if_match=False)
