"""Dashboard brief: figures against the previous period, within scope (SPEC G1)."""

from __future__ import annotations

import datetime as dt

import pytest

from app.models import FollowUp, Order
from tests.factories import auth, make_customer, make_org

SH = dt.timezone(dt.timedelta(hours=8))


def at(month: int, day: int) -> dt.datetime:
    return dt.datetime(2026, month, day, 12, 0, tzinfo=SH)


@pytest.fixture
async def org(maker):
    return await make_org(maker)


async def test_brief_compares_with_the_previous_period(app, client, maker, org, db):
    x = await make_customer(
        maker, org.rep_a, "十月一", created_at=at(10, 3), deal_status="signed", signed_at=at(10, 20)
    )
    y = await make_customer(maker, org.rep_a, "十月二", created_at=at(10, 5))
    await make_customer(maker, org.rep_a, "十月三", created_at=at(10, 9))
    await make_customer(maker, org.rep_a, "九月", created_at=at(9, 12))
    await make_customer(maker, org.rep_d, "南方一", created_at=at(10, 1))
    await make_customer(maker, org.rep_d, "南方二", created_at=at(10, 2))
    for customer, kind, when, score in (
        (x, "visit", at(10, 6), None),
        (y, "return_visit", at(10, 7), 4),
        (x, "return_visit", at(9, 8), 2),
    ):
        db.add(
            FollowUp(
                customer_id=customer.id,
                author_id=org.rep_a.id,
                type=kind,
                content="c",
                occurred_at=when,
                satisfaction=score,
            )
        )
    for customer, when in ((x, at(9, 10)), (y, at(9, 11)), (x, at(10, 12))):
        db.add(Order(customer_id=customer.id, ordered_at=when, amount_cents=100, source="import"))
    await db.commit()

    response = await client.get(
        "/api/v1/dashboard/brief",
        params={"period": "month", "date": "2026-10-15"},
        headers=auth(app, org.rep_a),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["start"], body["end"], body["previous_start"]) == (
        "2026-10-01",
        "2026-10-31",
        "2026-09-01",
    )
    m = body["metrics"]
    assert m["new_customers"] == {"value": 3, "previous": 1, "change": 2, "change_pct": 2.0}
    assert (m["follow_ups"]["value"], m["follow_ups"]["previous"]) == (2, 1)
    assert m["visits"] == {"value": 1, "previous": 0, "change": 1, "change_pct": None}
    assert (m["avg_satisfaction"]["value"], m["avg_satisfaction"]["previous"]) == (4.0, 2.0)
    assert (m["conversion_rate"]["value"], m["conversion_rate"]["previous"]) == (0.3333, 0.0)
    assert (m["retention_rate"]["value"], m["retention_rate"]["previous"]) == (0.5, None)
    assert m["won_amount"]["value"] == "0.00" and m["payments_received"]["value"] == "0.00"

    admin = (
        await client.get(
            "/api/v1/dashboard/brief", params={"date": "2026-10-15"}, headers=auth(app, org.admin)
        )
    ).json()
    assert admin["metrics"]["new_customers"]["value"] == 5
    south = (
        await client.get(
            "/api/v1/dashboard/brief", params={"date": "2026-10-15"}, headers=auth(app, org.rep_d)
        )
    ).json()
    assert (
        south["metrics"]["new_customers"]["value"] == 2
        and south["metrics"]["follow_ups"]["value"] == 0
    )


# A number is no date (pydantic alone read `date=0` as 1970-01-01; found by Schemathesis).
@pytest.mark.parametrize(
    "params", [{"period": "year"}, {"date": "2026-13-01"}, {"date": "0"}, {"date": "1735689600"}]
)
async def test_brief_rejects_bad_input(app, client, org, params):
    assert (
        await client.get("/api/v1/dashboard/brief", params=params, headers=auth(app, org.rep_a))
    ).status_code == 422


async def test_weeks_and_quarters(app, client, org):
    week = (
        await client.get(
            "/api/v1/dashboard/brief",
            params={"period": "week", "date": "2026-11-25"},
            headers=auth(app, org.rep_a),
        )
    ).json()
    assert (week["start"], week["end"], week["previous_start"]) == (
        "2026-11-23",
        "2026-11-29",
        "2026-11-16",
    )
    quarter = (
        await client.get(
            "/api/v1/dashboard/brief",
            params={"period": "quarter", "date": "2026-11-25"},
            headers=auth(app, org.rep_a),
        )
    ).json()
    assert (quarter["start"], quarter["end"], quarter["previous_start"]) == (
        "2026-10-01",
        "2026-12-31",
        "2026-07-01",
    )


async def test_trend_and_ranking(app, client, maker, org):
    for owner, month, day in (
        (org.rep_a, 9, 3),
        (org.rep_a, 10, 3),
        (org.rep_a, 10, 4),
        (org.rep_b, 10, 5),
        (org.rep_d, 10, 6),
    ):
        await make_customer(
            maker, owner, f"客户{owner.id}-{month}-{day}", created_at=at(month, day)
        )
    trend = await client.get(
        "/api/v1/dashboard/trend",
        params={
            "metric": "new_customers",
            "granularity": "month",
            "from": "2026-08-15",
            "to": "2026-10-15",
        },
        headers=auth(app, org.mgr_east),
    )
    assert trend.status_code == 200, trend.text
    assert [(b["start"], b["value"]) for b in trend.json()["buckets"]] == [
        ("2026-08-01", 0),
        ("2026-09-01", 1),
        ("2026-10-01", 3),
    ]
    ranking = await client.get(
        "/api/v1/dashboard/ranking",
        params={"metric": "new_customers", "date": "2026-10-15"},
        headers=auth(app, org.mgr_east),
    )
    rows = [(r["rank"], r["user"]["id"], r["value"]) for r in ranking.json()["rows"]]
    assert rows[:2] == [(1, org.rep_a.id, 2), (2, org.rep_b.id, 1)]
    assert org.rep_d.id not in [r[1] for r in rows]  # outside the manager's scope
    own = await client.get(
        "/api/v1/dashboard/ranking",
        params={"metric": "new_customers", "date": "2026-10-15"},
        headers=auth(app, org.rep_a),
    )
    assert [r["user"]["id"] for r in own.json()["rows"]] == [org.rep_a.id]
    bad = await client.get(
        "/api/v1/dashboard/trend",
        params={"metric": "vanity", "from": "2026-01-01", "to": "2026-02-01"},
        headers=auth(app, org.rep_a),
    )
    assert bad.status_code == 422
    too_long = await client.get(
        "/api/v1/dashboard/trend",
        params={"metric": "visits", "granularity": "day", "from": "2026-01-01", "to": "2026-12-31"},
        headers=auth(app, org.rep_a),
    )
    assert too_long.status_code == 422


async def test_targets_with_completion(app, client, maker, org):
    for day in (3, 4, 5):
        await make_customer(maker, org.rep_a, f"目标{day}", created_at=at(10, day))
    await make_customer(maker, org.rep_c, "杭州目标", created_at=at(10, 6))
    manager = auth(app, org.mgr_east)
    set_rep = await client.put(
        "/api/v1/targets",
        json={"user_id": org.rep_a.id, "month": "2026-10", "metric": "new_customers", "target": 4},
        headers=manager,
    )
    assert set_rep.status_code == 200, set_rep.text
    assert (set_rep.json()["target"], set_rep.json()["actual"], set_rep.json()["completion"]) == (
        4,
        3,
        0.75,
    )
    replaced = await client.put(
        "/api/v1/targets",
        json={"user_id": org.rep_a.id, "month": "2026-10", "metric": "new_customers", "target": 3},
        headers=manager,
    )
    assert replaced.json()["id"] == set_rep.json()["id"] and replaced.json()["completion"] == 1.0
    dept = await client.put(
        "/api/v1/targets",
        json={
            "department_id": org.east.id,
            "month": "2026-10",
            "metric": "new_customers",
            "target": 8,
        },
        headers=manager,
    )
    assert (dept.json()["actual"], dept.json()["completion"]) == (
        4,
        0.5,
    )  # East and Hangzhou below it
    money = await client.put(
        "/api/v1/targets",
        json={
            "user_id": org.rep_a.id,
            "month": "2026-10",
            "metric": "won_amount",
            "target": "50000.50",
        },
        headers=manager,
    )
    assert money.json()["target"] == "50000.50" and money.json()["actual"] == "0.00"
    listed = (
        await client.get(
            "/api/v1/targets", params={"month": "2026-10"}, headers=auth(app, org.rep_a)
        )
    ).json()
    assert {t["metric"] for t in listed} == {
        "new_customers",
        "won_amount",
    }  # rep sees own, not the department's
    for bad in (
        {
            "user_id": org.rep_d.id,
            "month": "2026-10",
            "metric": "visits",
            "target": 1,
        },  # outside scope
        {"month": "2026-10", "metric": "visits", "target": 1},
        {
            "user_id": org.rep_a.id,
            "department_id": org.east.id,
            "month": "2026-10",
            "metric": "visits",
            "target": 1,
        },
        {"user_id": org.rep_a.id, "month": "2026-13", "metric": "visits", "target": 1},
        {"user_id": org.rep_a.id, "month": "2026-10", "metric": "visits", "target": "1.5"},
    ):
        assert (
            await client.put("/api/v1/targets", json=bad, headers=manager)
        ).status_code == 422, bad
    rep_sets = await client.put(
        "/api/v1/targets",
        json={"user_id": org.rep_a.id, "month": "2026-11", "metric": "visits", "target": 1},
        headers=auth(app, org.rep_a),
    )
    assert rep_sets.status_code == 403
    assert (
        await client.delete(f"/api/v1/targets/{dept.json()['id']}", headers=auth(app, org.mgr_hz))
    ).status_code == 404
    assert (
        await client.delete(f"/api/v1/targets/{dept.json()['id']}", headers=manager)
    ).status_code == 204
