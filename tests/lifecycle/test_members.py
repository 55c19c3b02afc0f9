"""Team members on a customer: read or read-write, with optional expiry (SPEC B10)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from app.models import AuditEvent, CustomerTeamMember, Notification, User
from app.models.base import utcnow
from tests.factories import add_team_member, auth, make_customer
from tests.lifecycle.conftest import rows


def members_url(customer, user=None):
    base = f"/api/v1/customers/{customer.id}/members"
    return base if user is None else f"{base}/{user.id}"


async def add(app, client, actor, customer, **body):
    return await client.post(members_url(customer), json=body, headers=auth(app, actor))


async def test_owner_shares_a_customer_and_the_member_can_read_it(app, client, maker, org, db):
    customer = await make_customer(maker, org.rep_a, "共享公司")
    url = f"/api/v1/customers/{customer.id}"
    assert (await client.get(url, headers=auth(app, org.rep_d))).status_code == 404
    response = await add(app, client, org.rep_a, customer, user_id=org.rep_d.id)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["user"] == {"id": org.rep_d.id, "display_name": "Rep D"}
    assert body["access"] == "read" and body["expires_at"] is None and body["created_at"]
    assert (await client.get(url, headers=auth(app, org.rep_d))).status_code == 200
    patch = await client.patch(
        url, json={"level": "A"}, headers={**auth(app, org.rep_d), "If-Match": '"1"'}
    )
    assert patch.status_code == 403
    events = await rows(db, select(AuditEvent.action, AuditEvent.changes))
    assert events[0][0] == "member_added"
    assert events[0][1]["member"]["after"]["user_id"] == org.rep_d.id
    notes = await rows(db, select(Notification.user_id, Notification.title))
    assert notes == [(org.rep_d.id, "Rep A 把你加入了客户 共享公司 的团队")]


async def test_a_write_member_may_change_the_customer(app, client, maker, org):
    customer = await make_customer(maker, org.rep_a)
    await add(app, client, org.rep_a, customer, user_id=org.rep_d.id, access="write")
    patch = await client.patch(
        f"/api/v1/customers/{customer.id}",
        json={"level": "A"},
        headers={**auth(app, org.rep_d), "If-Match": '"1"'},
    )
    assert patch.status_code == 200


async def test_adding_again_replaces_access_and_expiry(app, client, maker, org, db):
    customer = await make_customer(maker, org.rep_a)
    until = (utcnow() + dt.timedelta(days=7)).replace(microsecond=0)
    await add(app, client, org.rep_a, customer, user_id=org.rep_d.id)
    again = await add(
        app,
        client,
        org.rep_a,
        customer,
        user_id=org.rep_d.id,
        access="write",
        expires_at=until.isoformat(),
    )
    assert again.status_code == 201
    assert again.json()["access"] == "write"
    assert dt.datetime.fromisoformat(again.json()["expires_at"]) == until
    members = await rows(db, select(CustomerTeamMember.user_id, CustomerTeamMember.access))
    assert members == [(org.rep_d.id, "write")]
    actions = [a for (a,) in await rows(db, select(AuditEvent.action).order_by(AuditEvent.id))]
    assert actions == ["member_added", "member_changed"]
    assert len(await rows(db, select(Notification.id))) == 1


async def test_list_shows_current_members(app, client, maker, org):
    customer = await make_customer(maker, org.rep_a)
    await add_team_member(maker, customer, org.rep_b, "write")
    await add_team_member(maker, customer, org.rep_d, "read", utcnow() - dt.timedelta(hours=1))
    await add_team_member(maker, customer, org.rep_c, "read", utcnow() + dt.timedelta(days=1))
    response = await client.get(members_url(customer), headers=auth(app, org.rep_b))
    assert response.status_code == 200
    assert [(m["user"]["id"], m["access"]) for m in response.json()] == [
        (org.rep_b.id, "write"),
        (org.rep_c.id, "read"),
    ]


async def test_expired_membership_gives_no_access(app, client, maker, org):
    customer = await make_customer(maker, org.rep_a)
    await add_team_member(maker, customer, org.rep_d, "write", utcnow() - dt.timedelta(minutes=1))
    read = await client.get(f"/api/v1/customers/{customer.id}", headers=auth(app, org.rep_d))
    assert read.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"access": "read"},
        {"user_id": 1, "access": "admin"},
        {"user_id": 1, "expires_at": "2020-01-01T00:00:00+00:00"},
        {"user_id": 1, "expires_at": "2999-01-01T00:00:00"},
        {"user_id": 1, "role": "x"},
    ],
)
async def test_bad_member_bodies_are_422(app, client, maker, org, body):
    customer = await make_customer(maker, org.rep_a)
    assert (await add(app, client, org.rep_a, customer, **body)).status_code == 422


async def test_the_member_must_be_an_active_user_other_than_the_owner(app, client, maker, org, db):
    customer = await make_customer(maker, org.rep_a)
    owner = await add(app, client, org.rep_a, customer, user_id=org.rep_a.id)
    assert owner.status_code == 422
    assert (await add(app, client, org.rep_a, customer, user_id=999999)).status_code == 422
    async with maker() as session, session.begin():
        (await session.get(User, org.rep_d.id)).is_active = False
    assert (await add(app, client, org.rep_a, customer, user_id=org.rep_d.id)).status_code == 422
    assert await rows(db, select(CustomerTeamMember.id)) == []


async def test_removing_a_member_ends_their_access(app, client, maker, org, db):
    customer = await make_customer(maker, org.rep_a)
    await add_team_member(maker, customer, org.rep_d, "read")
    response = await client.delete(members_url(customer, org.rep_d), headers=auth(app, org.rep_a))
    assert response.status_code == 204
    assert await rows(db, select(CustomerTeamMember.id)) == []
    read = await client.get(f"/api/v1/customers/{customer.id}", headers=auth(app, org.rep_d))
    assert read.status_code == 404
    again = await client.delete(members_url(customer, org.rep_d), headers=auth(app, org.rep_a))
    assert again.status_code == 404
    actions = [a for (a,) in await rows(db, select(AuditEvent.action))]
    assert actions == ["member_removed"]


async def test_member_routes_authorization(app, client, maker, org, db):
    customer = await make_customer(maker, org.rep_a)
    await add_team_member(maker, customer, org.rep_b, "read")
    list_url, one_url = members_url(customer), members_url(customer, org.rep_b)
    body = {"user_id": org.rep_c.id}
    assert (await client.get(list_url)).status_code == 401
    assert (await client.post(list_url, json=body)).status_code == 401
    assert (await client.delete(one_url)).status_code == 401
    outsider = auth(app, org.rep_d)
    assert (await client.get(list_url, headers=outsider)).status_code == 404
    assert (await client.post(list_url, json=body, headers=outsider)).status_code == 404
    assert (await client.delete(one_url, headers=outsider)).status_code == 404
    reader = auth(app, org.rep_b)
    assert (await client.get(list_url, headers=reader)).status_code == 200
    assert (await client.post(list_url, json=body, headers=reader)).status_code == 403
    assert (await client.delete(one_url, headers=reader)).status_code == 403
    members = await rows(db, select(CustomerTeamMember.user_id))
    assert members == [(org.rep_b.id,)]
