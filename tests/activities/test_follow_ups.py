"""Follow-ups (SPEC D1)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from app.models import Customer, FollowUp
from tests.factories import auth, make_contact, make_customer, make_org


@pytest.fixture
async def org(maker):
    return await make_org(maker)


def soon(**delta):
    return (dt.datetime.now(dt.UTC) + dt.timedelta(**delta)).isoformat()


async def test_logging_a_visit_with_check_in_moves_the_customer_clock(app, client, maker, org, db):
    customer = await make_customer(maker, org.rep_a, "打卡公司", lat=30.2741, lng=120.1551)
    contact = await make_contact(maker, customer, "王经理")
    body = {
        "customer_id": customer.id,
        "type": "visit",
        "content": "现场拜访，谈了续约",
        "contact_id": contact.id,
        "next_follow_up_at": soon(days=3),
        "check_in": {"lat": 30.2770, "lng": 120.1551, "accuracy_m": 12, "address": "西湖区"},
    }
    response = await client.post("/api/v1/follow-ups", json=body, headers=auth(app, org.rep_a))
    assert response.status_code == 201, response.text
    out = response.json()
    assert out["contact"] == {"id": contact.id, "name": "王经理"}
    assert 300 < out["check_in"]["distance_m"] < 345  # 0.0029° of latitude ≈ 322 m
    assert out["author"]["id"] == org.rep_a.id and out["customer_name"] == "打卡公司"
    stored = await db.get(Customer, customer.id)
    assert stored.last_follow_up_at == dt.datetime.fromisoformat(out["occurred_at"])
    assert stored.next_follow_up_at == dt.datetime.fromisoformat(body["next_follow_up_at"])
    timeline = (
        await client.get(f"/api/v1/customers/{customer.id}/timeline", headers=auth(app, org.rep_a))
    ).json()
    assert timeline["items"][0]["action"] == "follow_up_logged"
    listed = (
        await client.get(
            f"/api/v1/customers/{customer.id}/follow-ups", headers=auth(app, org.rep_a)
        )
    ).json()
    assert [f["id"] for f in listed["items"]] == [out["id"]]


async def test_return_visit_needs_a_satisfaction_score(app, client, maker, org, db):
    customer = await make_customer(maker, org.rep_a, "回访公司")
    base = {"customer_id": customer.id, "type": "return_visit", "content": "售后回访"}
    assert (
        await client.post("/api/v1/follow-ups", json=base, headers=auth(app, org.rep_a))
    ).status_code == 422
    bad = {**base, "satisfaction": 6}
    assert (
        await client.post("/api/v1/follow-ups", json=bad, headers=auth(app, org.rep_a))
    ).status_code == 422
    ok = await client.post(
        "/api/v1/follow-ups", json={**base, "satisfaction": 4}, headers=auth(app, org.rep_a)
    )
    assert ok.status_code == 201 and ok.json()["satisfaction"] == 4
    call = {"customer_id": customer.id, "type": "call", "content": "电话", "satisfaction": 3}
    assert (
        await client.post("/api/v1/follow-ups", json=call, headers=auth(app, org.rep_a))
    ).status_code == 422
    assert await db.scalar(select(func.count()).select_from(FollowUp)) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"occurred_at": soon(hours=2)},
        {"occurred_at": soon(days=-40)},
        {"next_follow_up_at": soon(days=-1)},
        {"type": "fax"},
        {"content": ""},
        {"contact_id": 999},
        {"check_in": {"lat": 91, "lng": 0}},
        {"occurred_at": "2026-11-01T10:00:00"},
    ],
)
async def test_bad_follow_ups_are_refused_and_change_nothing(app, client, maker, org, db, change):
    customer = await make_customer(maker, org.rep_a, "校验公司")
    body = {"customer_id": customer.id, "type": "call", "content": "电话沟通", **change}
    response = await client.post("/api/v1/follow-ups", json=body, headers=auth(app, org.rep_a))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await db.scalar(select(func.count()).select_from(FollowUp)) == 0
    assert (await db.get(Customer, customer.id)).last_follow_up_at is None


async def test_follow_up_on_a_customer_outside_scope_is_refused(app, client, maker, org, db):
    theirs = await make_customer(maker, org.rep_b, "别人的")
    body = {"customer_id": theirs.id, "type": "call", "content": "偷偷跟进"}
    response = await client.post("/api/v1/follow-ups", json=body, headers=auth(app, org.rep_a))
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "customer_id"]
    assert await db.scalar(select(func.count()).select_from(FollowUp)) == 0


async def test_follow_ups_are_scoped(app, client, maker, org):
    mine = await make_customer(maker, org.rep_a, "我的")
    theirs = await make_customer(maker, org.rep_d, "南方的")
    for user, customer in ((org.rep_a, mine), (org.rep_d, theirs)):
        r = await client.post(
            "/api/v1/follow-ups",
            json={"customer_id": customer.id, "type": "call", "content": "电话"},
            headers=auth(app, user),
        )
        assert r.status_code == 201
    mine_ids = {
        f["customer_id"]
        for f in (await client.get("/api/v1/follow-ups", headers=auth(app, org.rep_a))).json()[
            "items"
        ]
    }
    assert mine_ids == {mine.id}
    manager = {
        f["customer_id"]
        for f in (await client.get("/api/v1/follow-ups", headers=auth(app, org.mgr_east))).json()[
            "items"
        ]
    }
    assert manager == {mine.id}
    other = (await client.get("/api/v1/follow-ups", headers=auth(app, org.rep_d))).json()["items"][
        0
    ]["id"]
    assert (
        await client.get(f"/api/v1/follow-ups/{other}", headers=auth(app, org.rep_a))
    ).status_code == 404
    assert (
        await client.get(f"/api/v1/customers/{theirs.id}/follow-ups", headers=auth(app, org.rep_a))
    ).status_code == 404


async def test_backdated_follow_up_does_not_rewind_the_clock(app, client, maker, org, db):
    customer = await make_customer(maker, org.rep_a, "补录公司")
    headers = auth(app, org.rep_a)
    recent = await client.post(
        "/api/v1/follow-ups",
        json={"customer_id": customer.id, "type": "call", "content": "今天"},
        headers=headers,
    )
    older = {
        "customer_id": customer.id,
        "type": "message",
        "content": "上周补录",
        "occurred_at": soon(days=-7),
    }
    assert (await client.post("/api/v1/follow-ups", json=older, headers=headers)).status_code == 201
    stored = await db.get(Customer, customer.id)
    assert stored.last_follow_up_at == dt.datetime.fromisoformat(recent.json()["occurred_at"])
