"""Funnel snapshots reconstructed from history, checked day by day by hand (SPEC E3)."""

from __future__ import annotations

import datetime as dt

import pytest

from app.services import opportunities as opportunity_service
from tests.factories import auth, make_customer, make_org

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
DAYS = [dt.date(2026, 11, d) for d in (2, 3, 4, 5)]


@pytest.fixture
async def org(maker):
    return await make_org(maker)


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 2, 10, 0, tzinfo=SHANGHAI)

    def __call__(self) -> dt.datetime:
        return self.now.astimezone(dt.UTC)

    def day(self, index: int) -> None:
        self.now = dt.datetime.combine(DAYS[index], dt.time(10, 0), tzinfo=SHANGHAI)


async def test_snapshot_of_each_day_matches_hand_computed_numbers(
    app, client, maker, org, monkeypatch
):
    clock = Clock()
    monkeypatch.setattr(opportunity_service, "utcnow", clock)
    admin, rep = auth(app, org.admin), auth(app, org.rep_a)
    pipeline = (
        await client.post(
            "/api/v1/pipelines",
            json={
                "name": "漏斗",
                "stages": [
                    {"name": f"S{i}", "probability": p} for i, p in enumerate((10, 30, 60, 80), 1)
                ],
            },
            headers=admin,
        )
    ).json()
    stage = {s["name"]: s["id"] for s in pipeline["stages"]}
    reason = (
        await client.post("/api/v1/lost-reasons", json={"name": "预算不足"}, headers=admin)
    ).json()["id"]
    customer = await make_customer(maker, org.rep_a, "漏斗客户")
    etag: dict[str, str] = {}
    ids: dict[str, int] = {}

    async def create(name, amount, stage_name="S1"):
        r = await client.post(
            "/api/v1/opportunities",
            json={
                "customer_id": customer.id,
                "title": name,
                "amount": amount,
                "stage_id": stage[stage_name],
            },
            headers=rep,
        )
        assert r.status_code == 201, r.text
        ids[name], etag[name] = r.json()["id"], r.headers["ETag"]

    async def act(name, path, body, method="POST"):
        r = await client.request(
            method,
            f"/api/v1/opportunities/{ids[name]}{path}",
            json=body,
            headers={**rep, "If-Match": etag[name]},
        )
        assert r.status_code == 200, r.text
        etag[name] = r.headers["ETag"]

    # Day 1: A 1000, B 2000, C 3000 open in S1.
    clock.day(0)
    for name, amount in (("A", "1000"), ("B", "2000"), ("C", "3000")):
        await create(name, amount)
    # Day 2: A → S2, B → S3, C's amount → 4000.
    clock.day(1)
    await act("A", "/stage", {"stage_id": stage["S2"]})
    await act("B", "/stage", {"stage_id": stage["S3"]})
    await act("C", "", {"amount": "4000"}, method="PATCH")
    # Day 3: A won, B lost, C → S2.
    clock.day(2)
    await act("A", "/win", {})
    await act("B", "/lose", {"lost_reason_id": reason})
    await act("C", "/stage", {"stage_id": stage["S2"]})
    # Day 4: C slips back to S1; D 500 opens in S2.
    clock.day(3)
    await act("C", "/stage", {"stage_id": stage["S1"]})
    await create("D", "500", "S2")

    async def snapshot(day):
        r = await client.get(
            "/api/v1/funnel",
            params={"pipeline_id": pipeline["id"], "as_of": day.isoformat()},
            headers=rep,
        )
        assert r.status_code == 200, r.text
        body = r.json()
        rows = {s["name"]: s for s in body["stages"]}
        return body, rows

    def figures(rows, *names):
        return [(rows[n]["count"], rows[n]["amount"], rows[n]["weighted_amount"]) for n in names]

    def conversions(rows):
        return [rows[n]["conversion_to_next"] for n in ("S1", "S2", "S3", "S4")]

    body, rows = await snapshot(DAYS[0])
    assert figures(rows, "S1", "S2") == [(3, "6000.00", "600.00"), (0, "0.00", "0.00")]
    assert [rows[n]["reached"] for n in ("S1", "S2")] == [3, 0]
    assert conversions(rows) == [0.0, None, None, None]
    assert rows["S1"]["avg_days_in_stage"] == 0.58  # 10:00 to midnight
    assert (
        body["open_count"],
        body["open_amount"],
        body["weighted_open_amount"],
        body["win_rate"],
    ) == (3, "6000.00", "600.00", None)

    body, rows = await snapshot(DAYS[1])
    assert figures(rows, "S1", "S2", "S3") == [
        (1, "4000.00", "400.00"),
        (1, "1000.00", "300.00"),
        (1, "2000.00", "1200.00"),
    ]
    assert conversions(rows) == [0.6667, 0.5, 0.0, None]
    assert (body["open_amount"], body["weighted_open_amount"]) == ("7000.00", "1900.00")
    day_two = rows

    body, rows = await snapshot(DAYS[2])
    assert figures(rows, "S2", "赢单", "输单") == [
        (1, "4000.00", "1200.00"),
        (1, "1000.00", "1000.00"),
        (1, "2000.00", "0.00"),
    ]
    assert conversions(rows) == [1.0, 0.6667, 0.5, 1.0]
    assert (body["won_count"], body["lost_count"], body["win_rate"]) == (1, 1, 0.5)
    assert (body["open_count"], body["open_amount"]) == (1, "4000.00")

    body, rows = await snapshot(DAYS[3])
    assert figures(rows, "S1", "S2") == [(1, "4000.00", "400.00"), (1, "500.00", "150.00")]
    assert [rows[n]["reached"] for n in ("S1", "S2", "S3", "S4")] == [4, 4, 2, 1]
    assert conversions(rows) == [1.0, 0.5, 0.5, 1.0]
    assert rows["S1"]["avg_days_in_stage"] == 1.53  # A 1 day, B 1 day, C 2 days + 14 h
    assert (body["open_count"], body["open_amount"], body["weighted_open_amount"]) == (
        2,
        "4500.00",
        "550.00",
    )

    # A past day's snapshot stays the same after later changes; scope applies.
    assert (await snapshot(DAYS[1]))[1] == day_two

    async def movement(a, b):
        r = await client.get(
            "/api/v1/funnel/movement",
            params={"from": a.isoformat(), "to": b.isoformat()},
            headers=rep,
        )
        assert r.status_code == 200, r.text
        return {
            k: [
                (i["title"], i["from_stage"], i["to_stage"], i["amount"])
                for i in r.json()[k]["items"]
            ]
            for k in ("new", "advanced", "slipped_back", "won", "lost")
        }

    assert await movement(DAYS[1], DAYS[2]) == {
        "new": [],
        "advanced": [("C", "S1", "S2", "4000.00")],
        "slipped_back": [],
        "won": [("A", "S2", "赢单", "1000.00")],
        "lost": [("B", "S3", "输单", "2000.00")],
    }
    assert await movement(DAYS[2], DAYS[3]) == {
        "new": [("D", None, "S2", "500.00")],
        "advanced": [],
        "slipped_back": [("C", "S2", "S1", "4000.00")],
        "won": [],
        "lost": [],
    }
    span = await client.get(
        "/api/v1/funnel/movement",
        params={"from": DAYS[0].isoformat(), "to": DAYS[3].isoformat()},
        headers=rep,
    )
    assert {
        k: (span.json()[k]["count"], span.json()[k]["amount"]) for k in ("new", "won", "lost")
    } == {
        "new": (1, "500.00"),
        "won": (1, "1000.00"),
        "lost": (1, "2000.00"),
    }
    backwards = await client.get(
        "/api/v1/funnel/movement",
        params={"from": DAYS[3].isoformat(), "to": DAYS[0].isoformat()},
        headers=rep,
    )
    assert backwards.status_code == 422

    other = await client.get(
        "/api/v1/funnel",
        params={"pipeline_id": pipeline["id"], "as_of": DAYS[3].isoformat()},
        headers=auth(app, org.rep_d),
    )
    assert other.json()["open_count"] == 0 and all(s["count"] == 0 for s in other.json()["stages"])
    manager = await client.get(
        "/api/v1/funnel",
        params={
            "pipeline_id": pipeline["id"],
            "as_of": DAYS[3].isoformat(),
            "owner_id": org.rep_a.id,
        },
        headers=auth(app, org.mgr_east),
    )
    assert manager.json()["open_count"] == 2


async def test_funnel_input_errors(app, client, org):
    headers = auth(app, org.rep_a)
    assert (
        await client.get("/api/v1/funnel", headers=headers)
    ).status_code == 422  # no pipeline yet
    assert (
        await client.get("/api/v1/funnel", params={"pipeline_id": 999}, headers=headers)
    ).status_code == 422
    await client.post(
        "/api/v1/pipelines",
        json={"name": "p", "stages": [{"name": "a", "probability": 10}]},
        headers=auth(app, org.admin),
    )
    assert (
        await client.get("/api/v1/funnel", params={"as_of": "2999-01-01"}, headers=headers)
    ).status_code == 422
    assert (
        await client.get("/api/v1/funnel", params={"as_of": "not-a-date"}, headers=headers)
    ).status_code == 422
    assert (await client.get("/api/v1/funnel", headers=headers)).status_code == 200


async def test_forecast_by_close_month_against_actual(app, client, maker, org, monkeypatch):
    from app.services import funnel as funnel_service

    clock = Clock()
    monkeypatch.setattr(opportunity_service, "utcnow", clock)
    monkeypatch.setattr(
        funnel_service, "utcnow", lambda: dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
    )
    admin, rep = auth(app, org.admin), auth(app, org.rep_a)
    stages = [
        {"name": "S1", "probability": 10},
        {"name": "S2", "probability": 30},
        {"name": "S3", "probability": 60, "forecast_category": "best_case"},
        {"name": "S4", "probability": 80, "forecast_category": "commit"},
    ]
    pipeline = (
        await client.post(
            "/api/v1/pipelines", json={"name": "预测", "stages": stages}, headers=admin
        )
    ).json()
    stage = {s["name"]: s["id"] for s in pipeline["stages"]}
    customer = await make_customer(maker, org.rep_a, "预测客户")

    async def create(title, amount, stage_name, close):
        r = await client.post(
            "/api/v1/opportunities",
            json={
                "customer_id": customer.id,
                "title": title,
                "amount": amount,
                "stage_id": stage[stage_name],
                "expected_close_date": close,
            },
            headers=rep,
        )
        assert r.status_code == 201, r.text
        return r.json()["id"], r.headers["ETag"]

    clock.now = dt.datetime(2026, 10, 15, 10, 0, tzinfo=SHANGHAI)
    e, e_tag = await create("E", "1000", "S4", "2026-11-20")
    clock.now = dt.datetime(2026, 11, 10, 10, 0, tzinfo=SHANGHAI)
    assert (
        await client.post(
            f"/api/v1/opportunities/{e}/win", json={}, headers={**rep, "If-Match": e_tag}
        )
    ).status_code == 200
    clock.now = dt.datetime(2026, 11, 12, 10, 0, tzinfo=SHANGHAI)
    await create("A", "1000", "S3", "2026-12-15")
    b, b_tag = await create("B", "2000", "S4", "2026-12-20")
    override = await client.patch(
        f"/api/v1/opportunities/{b}",
        json={"forecast_category": "omitted"},
        headers={**rep, "If-Match": b_tag},
    )
    assert (
        override.json()["forecast_category"] == "omitted"
        and override.json()["forecast_category_overridden"]
    )
    await create("C", "3000", "S1", "2027-01-10")

    response = await client.get(
        "/api/v1/forecast", params={"from": "2026-10", "to": "2027-01"}, headers=rep
    )
    assert response.status_code == 200, response.text
    months = {m["month"]: m for m in response.json()["months"]}
    zero = {"pipeline": "0.00", "best_case": "0.00", "commit": "0.00", "omitted": "0.00"}
    assert months["2026-10"] == {
        "month": "2026-10",
        "categories": zero,
        "closed": "0.00",
        "weighted": "0.00",
        "forecast_at_start": "0.00",
    }
    assert months["2026-11"] == {
        "month": "2026-11",
        "categories": zero,
        "closed": "1000.00",
        "weighted": "0.00",
        "forecast_at_start": "800.00",
    }
    assert months["2026-12"] == {
        "month": "2026-12",
        "categories": {**zero, "best_case": "1000.00", "omitted": "2000.00"},
        "closed": "0.00",
        "weighted": "600.00",
        "forecast_at_start": None,
    }
    assert (
        months["2027-01"]["categories"]["pipeline"] == "3000.00"
        and months["2027-01"]["weighted"] == "300.00"
    )
    for bad in (
        {"from": "2026-13", "to": "2027-01"},
        {"from": "2027-01", "to": "2026-01"},
        {"from": "2020-01", "to": "2026-01"},
    ):
        assert (await client.get("/api/v1/forecast", params=bad, headers=rep)).status_code == 422
    assert (
        await client.get(
            "/api/v1/forecast",
            params={"from": "2026-10", "to": "2027-01"},
            headers=auth(app, org.rep_d),
        )
    ).json()["months"][2]["weighted"] == "0.00"
