"""Freeze, abandon, the recycle bin and restoring from it (SPEC B8)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from app.models import AuditEvent, Contact, Customer, FollowUp, Notification, Opportunity
from app.models.base import utcnow
from tests.factories import add_team_member, auth, make_contact, make_customer
from tests.lifecycle.conftest import (
    make_follow_up,
    make_opportunity,
    make_stage,
    put_in_bin,
    reload,
    rows,
    set_caps,
)


async def park(app, client, user, customer, action="freeze", reason="预算冻结，明年再谈"):
    return await client.post(
        f"/api/v1/customers/{customer.id}/{action}",
        json={"reason": reason},
        headers=auth(app, user),
    )


async def bin_page(app, client, user, **params):
    response = await client.get("/api/v1/recycle-bin", params=params, headers=auth(app, user))
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(("action", "kind"), [("freeze", "frozen"), ("abandon", "abandoned")])
async def test_freeze_and_abandon_put_the_customer_in_the_bin(
    app, client, maker, org, db, action, kind
):
    customer = await make_customer(maker, org.rep_a, "冻结公司", locked_at=utcnow())
    response = await park(app, client, org.rep_a, customer, action, " 没有预算 ")
    assert response.status_code == 204, response.text
    row = await reload(db, Customer, customer.id)
    assert row.deleted_at is not None and row.deleted_by_id == org.rep_a.id
    assert (row.recycle_kind, row.recycle_reason) == (kind, "没有预算")
    assert row.locked_at is None
    event = (await rows(db, select(AuditEvent.action, AuditEvent.changes)))[0]
    assert event[0] == kind and event[1]["recycle_reason"]["after"] == "没有预算"
    read = await client.get(f"/api/v1/customers/{customer.id}", headers=auth(app, org.rep_a))
    assert read.status_code == 404
    listed = await client.get("/api/v1/customers", headers=auth(app, org.rep_a))
    assert listed.json()["items"] == []


@pytest.mark.parametrize(
    "body", [{}, {"reason": ""}, {"reason": "x" * 501}, {"reason": "ok", "x": 1}]
)
async def test_freeze_needs_a_reason(app, client, maker, org, db, body):
    customer = await make_customer(maker, org.rep_a)
    response = await client.post(
        f"/api/v1/customers/{customer.id}/freeze", json=body, headers=auth(app, org.rep_a)
    )
    assert response.status_code == 422
    assert (await reload(db, Customer, customer.id)).deleted_at is None


async def test_the_owner_hears_when_someone_else_freezes_their_customer(
    app, client, maker, org, db
):
    customer = await make_customer(maker, org.rep_a, "甲公司")
    assert (await park(app, client, org.mgr_east, customer)).status_code == 204
    notes = await rows(db, select(Notification.user_id, Notification.title))
    assert notes == [(org.rep_a.id, "Mgr East 冻结了客户 甲公司")]


@pytest.mark.parametrize("action", ["freeze", "abandon"])
async def test_freeze_and_abandon_need_the_customer_writable(app, client, maker, org, db, action):
    customer = await make_customer(maker, org.rep_a)
    await add_team_member(maker, customer, org.rep_b, "read")
    url = f"/api/v1/customers/{customer.id}/{action}"
    assert (await client.post(url, json={"reason": "r"})).status_code == 401
    assert (await park(app, client, org.rep_d, customer, action)).status_code == 404
    assert (await park(app, client, org.rep_b, customer, action)).status_code == 403
    assert (await reload(db, Customer, customer.id)).deleted_at is None


async def test_bin_lists_what_the_caller_may_read_newest_first(app, client, maker, org):
    now = utcnow()
    mine_old = await make_customer(maker, org.rep_a, "旧的公司")
    mine_new = await make_customer(maker, org.rep_a, "新的公司")
    others = await make_customer(maker, org.rep_d, "别人的公司")
    live = await make_customer(maker, org.rep_a, "还在的公司")
    await put_in_bin(maker, mine_old, kind="abandoned", by=org.rep_a, at=now - dt.timedelta(days=2))
    await put_in_bin(maker, mine_new, kind="frozen", by=org.mgr_east, at=now)
    await put_in_bin(maker, others, kind="deleted", by=org.rep_d)
    page = await bin_page(app, client, org.rep_a)
    assert [i["id"] for i in page["items"]] == [mine_new.id, mine_old.id]
    assert live.id not in [i["id"] for i in page["items"]]
    first = page["items"][0]
    assert first["name"] == "新的公司" and first["recycle_kind"] == "frozen"
    assert first["recycle_reason"] == "暂无需求" and first["merged_into_id"] is None
    assert first["deleted_by"] == {"id": org.mgr_east.id, "display_name": "Mgr East"}
    assert first["owner"] == {"id": org.rep_a.id, "display_name": "Rep A"}
    admin_ids = [i["id"] for i in (await bin_page(app, client, org.admin))["items"]]
    assert set(admin_ids) == {mine_old.id, mine_new.id, others.id}


async def test_bin_filters_by_kind_and_name(app, client, maker, org):
    frozen = await make_customer(maker, org.rep_a, "青禾科技")
    abandoned = await make_customer(maker, org.rep_a, "红叶贸易")
    legacy = await make_customer(maker, org.rep_a, "老数据公司")
    await put_in_bin(maker, frozen, kind="frozen")
    await put_in_bin(maker, abandoned, kind="abandoned")
    # Deleted before recycle_kind existed: listed as deleted.
    await put_in_bin(maker, legacy, kind=None, reason=None)
    ids = lambda page: [i["id"] for i in page["items"]]  # noqa: E731
    assert ids(await bin_page(app, client, org.rep_a, kind="frozen")) == [frozen.id]
    assert ids(await bin_page(app, client, org.rep_a, kind="deleted")) == [legacy.id]
    assert ids(await bin_page(app, client, org.rep_a, q="红叶")) == [abandoned.id]
    assert ids(await bin_page(app, client, org.rep_a, q="%")) == []
    bad = await client.get(
        "/api/v1/recycle-bin", params={"kind": "lost"}, headers=auth(app, org.rep_a)
    )
    assert bad.status_code == 422


async def test_bin_pages_by_cursor_without_repeats(app, client, maker, org):
    now = utcnow()
    made = []
    for n in range(5):
        customer = await make_customer(maker, org.rep_a, f"公司{n}")
        # Two share a moment: the id breaks the tie.
        await put_in_bin(maker, customer, at=now - dt.timedelta(minutes=n // 2))
        made.append(customer.id)
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await bin_page(app, client, org.rep_a, **params)
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(made) and len(seen) == len(set(seen)) == 5


async def test_bin_needs_a_token(client):
    assert (await client.get("/api/v1/recycle-bin")).status_code == 401


async def test_restore_brings_the_customer_back_with_everything(app, client, maker, org, db):
    customer = await make_customer(maker, org.rep_a, "复活公司")
    contact = await make_contact(maker, customer, "张经理")
    follow_up = await make_follow_up(maker, customer, org.rep_a)
    opp = await make_opportunity(maker, await make_stage(maker), customer, org.rep_a)
    assert (await park(app, client, org.rep_a, customer, "abandon")).status_code == 204
    response = await client.post(
        f"/api/v1/customers/{customer.id}/restore", headers=auth(app, org.rep_a)
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"] == customer.id
    assert response.headers["ETag"] == f'"{response.json()["version"]}"'
    row = await reload(db, Customer, customer.id)
    assert (row.deleted_at, row.deleted_by_id, row.recycle_kind, row.recycle_reason) == (
        None,
        None,
        None,
        None,
    )
    assert (await reload(db, Contact, contact.id)).customer_id == customer.id
    assert (await reload(db, FollowUp, follow_up.id)).customer_id == customer.id
    assert (await reload(db, Opportunity, opp.id)).customer_id == customer.id
    timeline = await client.get(
        f"/api/v1/customers/{customer.id}/timeline", headers=auth(app, org.rep_a)
    )
    assert [e["action"] for e in timeline.json()["items"]] == ["restored", "abandoned"]


async def test_restore_refused_when_the_owner_is_at_the_cap(app, client, maker, org, db):
    await set_caps(maker, org.rep_a, owned=1)
    binned = await make_customer(maker, org.rep_a)
    await put_in_bin(maker, binned)
    await make_customer(maker, org.rep_a)
    response = await client.post(
        f"/api/v1/customers/{binned.id}/restore", headers=auth(app, org.rep_a)
    )
    assert response.status_code == 409 and response.json()["cap"] == 1
    assert (await reload(db, Customer, binned.id)).deleted_at is not None


async def test_a_merged_customer_cannot_be_restored(app, client, maker, org, db):
    kept = await make_customer(maker, org.rep_a)
    merged = await make_customer(maker, org.rep_a)
    await put_in_bin(maker, merged, kind="merged", reason=None)
    async with maker() as session, session.begin():
        (await session.get(Customer, merged.id)).merged_into_id = kept.id
    response = await client.post(
        f"/api/v1/customers/{merged.id}/restore", headers=auth(app, org.rep_a)
    )
    assert response.status_code == 409 and response.json()["merged_into_id"] == kept.id


async def test_restore_authorization(app, client, maker, org, db):
    customer = await make_customer(maker, org.rep_a)
    live = await make_customer(maker, org.rep_a)
    await add_team_member(maker, customer, org.rep_b, "read")
    await put_in_bin(maker, customer)
    url = f"/api/v1/customers/{customer.id}/restore"
    assert (await client.post(url)).status_code == 401
    assert (await client.post(url, headers=auth(app, org.rep_d))).status_code == 404
    assert (await client.post(url, headers=auth(app, org.rep_b))).status_code == 403
    live_url = f"/api/v1/customers/{live.id}/restore"
    assert (await client.post(live_url, headers=auth(app, org.rep_a))).status_code == 404
    assert (await reload(db, Customer, customer.id)).deleted_at is not None
    count = await rows(db, select(func.count()).select_from(AuditEvent))
    assert count == [(0,)]
