"""Pools: configuration, membership, claim/assign/release/move, hidden fields, stats (C1–C6)."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import func, select

from app.models import ClaimCounter, Customer, Notification, OwnershipEvent
from app.models.base import utcnow
from tests.factories import auth, make_contact, make_customer, make_user
from tests.pools.conftest import make_pool


async def test_only_pool_managers_create_pools(app, client, org):
    body = {"name": "P", "members": []}
    response = await client.post("/api/v1/pools", json=body, headers=auth(app, org.rep_a))
    assert response.status_code == 403
    assert (await client.get("/api/v1/pools", headers=auth(app, org.admin))).json() == []


async def test_pool_input_is_validated(app, client, org):
    admin = auth(app, org.admin)
    twice = {"name": "P", "rules": [{"kind": "no_deal", "days": 5}, {"kind": "no_deal", "days": 9}]}
    assert (await client.post("/api/v1/pools", json=twice, headers=admin)).status_code == 422
    extra = {"name": "P", "owner_id": 1}
    assert (await client.post("/api/v1/pools", json=extra, headers=admin)).status_code == 422
    ghost = {"name": "P", "members": [{"role": "member", "user_id": 99999}]}
    response = await client.post("/api/v1/pools", json=ghost, headers=admin)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (await client.get("/api/v1/pools", headers=admin)).json() == []


async def test_members_include_child_departments_and_others_get_404(app, client, org):
    pool = await make_pool(client, app, org)
    # rep_c sits in Hangzhou, a child of East.
    mine = (await client.get("/api/v1/pools", headers=auth(app, org.rep_c))).json()
    assert [p["id"] for p in mine] == [pool["id"]]
    assert mine[0]["my_role"] == "member"
    assert (await client.get("/api/v1/pools", headers=auth(app, org.rep_d))).json() == []
    response = await client.get(f"/api/v1/pools/{pool['id']}", headers=auth(app, org.rep_d))
    assert response.status_code == 404
    response = await client.get(f"/api/v1/pools/{pool['id']}", headers=auth(app, org.mgr_east))
    assert response.json()["my_role"] == "admin"
    assert (await client.get(f"/api/v1/pools/{pool['id']}")).status_code == 401


async def test_pool_with_customers_cannot_be_deleted(app, client, maker, org):
    pool = await make_pool(client, app, org)
    await make_customer(maker, None, pool_id=pool["id"])
    headers = {**auth(app, org.admin), "If-Match": f'"{pool["version"]}"'}
    response = await client.delete(f"/api/v1/pools/{pool['id']}", headers=headers)
    assert response.status_code == 409
    assert response.json()["customers"] == 1


async def test_empty_pool_is_deleted_and_update_replaces_rules(app, client, org):
    pool = await make_pool(client, app, org)
    headers = {**auth(app, org.admin), "If-Match": f'"{pool["version"]}"'}
    body = {"rules": [{"kind": "no_deal", "days": 90, "level_days": {"A": 180}}], "cooling_days": 5}
    response = await client.patch(f"/api/v1/pools/{pool['id']}", json=body, headers=headers)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["rules"] == [{"kind": "no_deal", "days": 90, "level_days": {"A": 180}}]
    assert updated["cooling_days"] == 5 and updated["version"] > pool["version"]
    stale = await client.delete(f"/api/v1/pools/{pool['id']}", headers=headers)
    assert stale.status_code == 412
    headers["If-Match"] = f'"{updated["version"]}"'
    assert (await client.delete(f"/api/v1/pools/{pool['id']}", headers=headers)).status_code == 204


async def test_member_claims_a_pool_customer_and_owns_it(app, client, maker, org, db):
    pool = await make_pool(client, app, org)
    customer = await make_customer(maker, None, pool_id=pool["id"])
    response = await client.post(
        f"/api/v1/pools/{pool['id']}/claim",
        json={"customer_ids": [customer.id]},
        headers=auth(app, org.rep_a),
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [
        {
            "customer_id": customer.id,
            "outcome": "claimed",
            "reason": None,
            "detail": None,
            "until": None,
            "limit": None,
        }
    ]
    row = await db.get(Customer, customer.id)
    assert row is not None and row.owner_id == org.rep_a.id and row.pool_id is None
    assert row.owner_assigned_at is not None
    event = await db.scalar(select(OwnershipEvent).where(OwnershipEvent.customer_id == customer.id))
    assert event is not None and event.action == "claimed" and event.to_owner_id == org.rep_a.id
    timeline = await client.get(
        f"/api/v1/customers/{customer.id}/timeline", headers=auth(app, org.rep_a)
    )
    assert timeline.json()["items"][0]["action"] == "claimed"


async def test_claim_reports_each_customer_and_409_when_none_taken(app, client, maker, org):
    pool = await make_pool(client, app, org)
    free = await make_customer(maker, None, pool_id=pool["id"])
    owned = await make_customer(maker, org.rep_b)
    elsewhere = await make_customer(maker, None)  # unowned but in no pool
    headers = auth(app, org.rep_a)
    url = f"/api/v1/pools/{pool['id']}/claim"
    response = await client.post(
        url, json={"customer_ids": [free.id, owned.id, elsewhere.id, 10**9]}, headers=headers
    )
    assert response.status_code == 200
    outcomes = {r["customer_id"]: (r["outcome"], r["reason"]) for r in response.json()["results"]}
    assert outcomes == {
        free.id: ("claimed", None),
        owned.id: ("refused", "not_found"),  # rep_a cannot see rep_b's customer
        elsewhere.id: ("refused", "not_found"),
        10**9: ("refused", "not_found"),
    }
    again = await client.post(url, json={"customer_ids": [free.id]}, headers=auth(app, org.rep_b))
    assert again.status_code == 409
    assert again.json()["results"][0]["reason"] == "already_owned"


async def test_non_member_cannot_claim(app, client, maker, org):
    pool = await make_pool(client, app, org)
    customer = await make_customer(maker, None, pool_id=pool["id"])
    response = await client.post(
        f"/api/v1/pools/{pool['id']}/claim",
        json={"customer_ids": [customer.id]},
        headers=auth(app, org.rep_d),
    )
    assert response.status_code == 404


async def test_daily_claim_limit_is_counted_in_the_database(app, client, maker, org, db):
    pool = await make_pool(client, app, org, daily_claim_limit=2)
    customers = [await make_customer(maker, None, pool_id=pool["id"]) for _ in range(3)]
    response = await client.post(
        f"/api/v1/pools/{pool['id']}/claim",
        json={"customer_ids": [c.id for c in customers]},
        headers=auth(app, org.rep_a),
    )
    reasons = [(r["reason"], r["limit"]) for r in response.json()["results"]]
    assert reasons == [(None, None), (None, None), ("daily_limit", 2)]
    count = await db.scalar(select(ClaimCounter.count).where(ClaimCounter.user_id == org.rep_a.id))
    assert count == 2
    view = (await client.get(f"/api/v1/pools/{pool['id']}", headers=auth(app, org.rep_a))).json()
    assert view["claims_left_today"] == 0


async def test_concurrent_claims_never_pass_the_daily_limit(app, client, maker, org, db):
    pool = await make_pool(client, app, org, daily_claim_limit=3)
    customers = [await make_customer(maker, None, pool_id=pool["id"]) for _ in range(8)]
    headers = auth(app, org.rep_a)
    responses = await asyncio.gather(
        *(
            client.post(
                f"/api/v1/pools/{pool['id']}/claim", json={"customer_ids": [c.id]}, headers=headers
            )
            for c in customers
        )
    )
    assert sorted(r.status_code for r in responses) == [200] * 3 + [409] * 5
    owned = await db.scalar(
        select(func.count()).select_from(Customer).where(Customer.owner_id == org.rep_a.id)
    )
    assert owned == 3


async def test_of_50_concurrent_claims_on_one_customer_exactly_one_wins(app, client, maker, org):
    pool = await make_pool(client, app, org)
    customer = await make_customer(maker, None, pool_id=pool["id"])
    async with maker() as session, session.begin():
        reps = [
            await make_user(session, f"racer{i}", [org.roles["rep"]], org.east) for i in range(50)
        ]
    responses = await asyncio.gather(
        *(
            client.post(
                f"/api/v1/pools/{pool['id']}/claim",
                json={"customer_ids": [customer.id]},
                headers=auth(app, rep),
            )
            for rep in reps
        )
    )
    codes = [r.status_code for r in responses]
    assert codes.count(200) == 1 and codes.count(409) == 49, codes
    async with maker() as session:
        row = await session.get(Customer, customer.id)
        events = await session.scalar(
            select(func.count())
            .select_from(OwnershipEvent)
            .where(OwnershipEvent.customer_id == customer.id)
        )
    winner = reps[codes.index(200)]
    assert row is not None and row.owner_id == winner.id and events == 1


async def test_claim_refused_during_cooling_period(app, client, maker, org):
    pool = await make_pool(client, app, org, cooling_days=7)
    customer = await make_customer(maker, org.rep_a)
    headers = auth(app, org.rep_a)
    released = await client.post(
        f"/api/v1/customers/{customer.id}/release",
        json={"pool_id": pool["id"], "reason": "暂无需求"},
        headers=headers,
    )
    assert released.status_code == 200, released.text
    response = await client.post(
        f"/api/v1/pools/{pool['id']}/claim", json={"customer_ids": [customer.id]}, headers=headers
    )
    assert response.status_code == 409
    refusal = response.json()["results"][0]
    assert refusal["reason"] == "cooling_period"
    until = dt.datetime.fromisoformat(refusal["until"])
    assert dt.timedelta(days=6) < until - utcnow() <= dt.timedelta(days=7)
    # Another member may take it.
    other = await client.post(
        f"/api/v1/pools/{pool['id']}/claim",
        json={"customer_ids": [customer.id]},
        headers=auth(app, org.rep_b),
    )
    assert other.status_code == 200


async def test_claim_refused_at_the_owned_customer_cap(app, client, maker, org, db):
    pool = await make_pool(client, app, org)
    user = await db.get(type(org.rep_a), org.rep_a.id)
    assert user is not None
    user.max_owned_customers = 1
    await db.commit()
    await make_customer(maker, org.rep_a)
    customer = await make_customer(maker, None, pool_id=pool["id"])
    response = await client.post(
        f"/api/v1/pools/{pool['id']}/claim",
        json={"customer_ids": [customer.id]},
        headers=auth(app, org.rep_a),
    )
    assert response.status_code == 409
    assert response.json()["results"][0]["reason"] == "owned_cap"


async def test_admin_assigns_and_the_owner_hears_of_it(app, client, maker, org, db):
    pool = await make_pool(client, app, org)
    customer = await make_customer(maker, None, pool_id=pool["id"])
    url = f"/api/v1/pools/{pool['id']}/assign"
    body = {"customer_ids": [customer.id], "owner_id": org.rep_b.id}
    assert (await client.post(url, json=body, headers=auth(app, org.rep_a))).status_code == 403
    response = await client.post(url, json=body, headers=auth(app, org.mgr_east))
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["outcome"] == "assigned"
    note = await db.scalar(select(Notification).where(Notification.user_id == org.rep_b.id))
    assert note is not None and note.kind == "customers_assigned"


async def test_release_puts_the_customer_in_the_pool_with_reason(app, client, maker, org, db):
    pool = await make_pool(client, app, org)
    customer = await make_customer(maker, org.rep_a)
    url = f"/api/v1/customers/{customer.id}/release"
    body = {"pool_id": pool["id"], "reason": "联系不上"}
    # Someone else's customer: a manager may write it but only the owner releases.
    assert (await client.post(url, json=body, headers=auth(app, org.mgr_east))).status_code == 403
    assert (await client.post(url, json=body, headers=auth(app, org.rep_d))).status_code == 404
    response = await client.post(url, json=body, headers=auth(app, org.rep_a))
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["owner"] is None and out["pool_id"] == pool["id"]
    assert out["pool_reason"] == "联系不上"
    event = await db.scalar(select(OwnershipEvent).where(OwnershipEvent.customer_id == customer.id))
    assert event is not None and (event.action, event.from_owner_id) == ("released", org.rep_a.id)


async def test_release_only_into_a_pool_of_ones_own(app, client, maker, org):
    await make_pool(client, app, org)
    south = await make_pool(
        client,
        app,
        org,
        name="South pool",
        members=[{"role": "member", "department_id": org.south.id}],
    )
    customer = await make_customer(maker, org.rep_a)
    response = await client.post(
        f"/api/v1/customers/{customer.id}/release",
        json={"pool_id": south["id"], "reason": "x"},
        headers=auth(app, org.rep_a),
    )
    assert response.status_code == 422


async def test_hidden_fields_are_withheld_from_members_everywhere(app, client, maker, org):
    pool = await make_pool(client, app, org)
    customer = await make_customer(
        maker, org.rep_a, "隐藏客户", phones=["13912345678"], email="boss@example.com"
    )
    await make_contact(maker, customer, "联系人甲", phones=["13800001111"])
    await client.post(
        f"/api/v1/customers/{customer.id}/release",
        json={"pool_id": pool["id"], "reason": "x"},
        headers=auth(app, org.rep_a),
    )
    member = auth(app, org.rep_b)
    detail = (await client.get(f"/api/v1/customers/{customer.id}", headers=member)).json()
    assert detail["phones"] == [] and detail["email"] is None
    assert detail["hidden_fields"] == ["contacts", "email", "phones"]
    listed = (await client.get(f"/api/v1/pools/{pool['id']}/customers", headers=member)).json()[
        "items"
    ]
    assert [c["id"] for c in listed] == [customer.id] and listed[0]["phones"] == []
    for q in ("13912345678", "13800001111", "联系人甲"):
        found = await client.get(f"/api/v1/pools/{pool['id']}/customers?q={q}", headers=member)
        assert found.json()["items"] == [], q
    assert (
        await client.get(f"/api/v1/customers/{customer.id}/contacts", headers=member)
    ).json() == []
    timeline = (
        await client.get(f"/api/v1/customers/{customer.id}/timeline", headers=member)
    ).json()["items"]
    assert all("phones" not in e["changes"] and "email" not in e["changes"] for e in timeline)
    duplicates = (
        await client.get("/api/v1/customers/duplicates?phone=13912345678", headers=member)
    ).json()["matches"]
    assert duplicates and duplicates[0]["phones"] != ["13912345678"]
    # The pool's admin sees everything; the name stays searchable for members.
    admin_view = await client.get(
        f"/api/v1/customers/{customer.id}", headers=auth(app, org.mgr_east)
    )
    assert admin_view.json()["phones"] == ["13912345678"]
    by_name = await client.get(f"/api/v1/pools/{pool['id']}/customers?q=隐藏", headers=member)
    assert [c["id"] for c in by_name.json()["items"]] == [customer.id]


async def test_pool_customers_stay_out_of_the_customer_list(app, client, maker, org):
    pool = await make_pool(client, app, org)
    mine = await make_customer(maker, org.rep_a)
    await make_customer(maker, None, pool_id=pool["id"])
    listed = (await client.get("/api/v1/customers", headers=auth(app, org.rep_a))).json()["items"]
    assert [c["id"] for c in listed] == [mine.id]


async def test_admin_moves_customers_between_pools(app, client, maker, org, db):
    east = await make_pool(client, app, org)
    other = await make_pool(
        client,
        app,
        org,
        name="Second",
        members=[{"role": "admin", "user_id": org.mgr_east.id}],
    )
    customer = await make_customer(maker, None, pool_id=east["id"])
    url = f"/api/v1/pools/{east['id']}/move"
    body = {"customer_ids": [customer.id], "to_pool_id": other["id"]}
    assert (await client.post(url, json=body, headers=auth(app, org.rep_a))).status_code == 403
    response = await client.post(url, json=body, headers=auth(app, org.mgr_east))
    assert response.status_code == 200, response.text
    assert response.json()["succeeded"] == 1
    row = await db.get(Customer, customer.id)
    assert row is not None and row.pool_id == other["id"]


async def test_stats_count_inflow_and_outflow_per_rep(app, client, maker, org):
    pool = await make_pool(client, app, org)
    a1 = await make_customer(maker, org.rep_a)
    a2 = await make_customer(maker, org.rep_a)
    for c in (a1, a2):
        await client.post(
            f"/api/v1/customers/{c.id}/release",
            json={"pool_id": pool["id"], "reason": "x"},
            headers=auth(app, org.rep_a),
        )
    await client.post(
        f"/api/v1/pools/{pool['id']}/claim",
        json={"customer_ids": [a1.id]},
        headers=auth(app, org.rep_b),
    )
    await client.post(
        f"/api/v1/pools/{pool['id']}/assign",
        json={"customer_ids": [a2.id], "owner_id": org.rep_c.id},
        headers=auth(app, org.mgr_east),
    )
    today = utcnow().date()
    params = {"from": str(today - dt.timedelta(days=1)), "to": str(today + dt.timedelta(days=1))}
    url = f"/api/v1/pools/{pool['id']}/stats"
    assert (await client.get(url, params=params, headers=auth(app, org.rep_a))).status_code == 403
    response = await client.get(url, params=params, headers=auth(app, org.mgr_east))
    assert response.status_code == 200, response.text
    stats = response.json()
    per_rep = {r["user"]["id"]: r for r in stats["rows"]}
    assert per_rep[org.rep_a.id]["released"] == 2
    assert per_rep[org.rep_b.id]["claimed"] == 1
    assert per_rep[org.rep_c.id]["assigned"] == 1
    assert (stats["inflow"], stats["outflow"], stats["in_pool"]) == (2, 2, 0)


async def test_ownership_history_starts_when_a_customer_is_created(app, client, org, db):
    response = await client.post(
        "/api/v1/customers", json={"name": "新客户有限公司"}, headers=auth(app, org.rep_a)
    )
    assert response.status_code == 201, response.text
    event = await db.scalar(
        select(OwnershipEvent).where(OwnershipEvent.customer_id == response.json()["id"])
    )
    assert event is not None and (event.action, event.to_owner_id) == ("created", org.rep_a.id)


async def test_pool_routes_answer_404_outside_the_pool_and_change_nothing(
    app, client, maker, org, db
):
    pool = await make_pool(client, app, org)
    customer = await make_customer(maker, None, pool_id=pool["id"])
    outsider = auth(app, org.rep_d)  # South: not a member
    base = f"/api/v1/pools/{pool['id']}"
    ids = {"customer_ids": [customer.id]}
    calls = [
        ("GET", base, None),
        ("GET", f"{base}/customers", None),
        ("GET", f"{base}/stats?from=2026-11-01&to=2026-11-30", None),
        ("POST", f"{base}/claim", ids),
        ("POST", f"{base}/assign", {**ids, "owner_id": org.rep_d.id}),
        ("POST", f"{base}/move", {**ids, "to_pool_id": pool["id"]}),
        ("GET", f"/api/v1/customers/{customer.id}", None),
    ]
    for method, url, body in calls:
        response = await client.request(method, url, json=body, headers=outsider)
        assert response.status_code == 404, (method, url, response.text)
    await db.rollback()
    row = await db.get(Customer, customer.id)
    assert row is not None and (row.owner_id, row.pool_id) == (None, pool["id"])
