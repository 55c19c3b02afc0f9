"""Pipelines, products, opportunities and their history (SPEC E1, E2)."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import func, select

from app.models import Opportunity, OpportunityHistory, PipelineStage
from tests.factories import auth, make_customer, make_org


@pytest.fixture
async def org(maker):
    return await make_org(maker)


@pytest.fixture
async def pipeline(app, client, org):
    body = {
        "name": "标准销售流程",
        "stages": [
            {"name": "初步接洽", "probability": 10, "stale_days": 14},
            {"name": "需求确认", "probability": 30},
            {"name": "方案报价", "probability": 60, "forecast_category": "best_case"},
            {"name": "谈判", "probability": 80, "forecast_category": "commit"},
        ],
    }
    response = await client.post("/api/v1/pipelines", json=body, headers=auth(app, org.admin))
    assert response.status_code == 201, response.text
    return response.json()


def stage(pipeline, name):
    return next(s for s in pipeline["stages"] if s["name"] == name)


async def open_opportunity(app, client, user, customer, **body):
    response = await client.post(
        "/api/v1/opportunities",
        json={"customer_id": customer.id, "title": "年度采购", **body},
        headers=auth(app, user),
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_pipeline_gets_end_stages_and_becomes_default(pipeline):
    kinds = [(s["name"], s["kind"], s["forecast_category"]) for s in pipeline["stages"]]
    assert kinds[-3:] == [
        ("赢单", "won", "closed"),
        ("输单", "lost", "omitted"),
        ("无效", "invalid", "omitted"),
    ]
    assert pipeline["is_default"] is True and [s["position"] for s in pipeline["stages"]] == list(
        range(7)
    )


@pytest.mark.parametrize(
    "stages",
    [
        [{"name": "赢", "probability": 100, "kind": "won"}],
        [{"name": "a", "probability": 10}, {"name": "a", "probability": 20}],
        [{"name": "a", "probability": 101}],
        [],
    ],
)
async def test_bad_pipelines_are_refused(app, client, org, stages):
    response = await client.post(
        "/api/v1/pipelines", json={"name": "坏", "stages": stages}, headers=auth(app, org.admin)
    )
    assert response.status_code == 422


async def test_only_config_admins_manage_pipelines_and_products(app, client, org):
    for url, body in (
        ("/api/v1/pipelines", {"name": "p", "stages": [{"name": "a", "probability": 10}]}),
        ("/api/v1/products", {"name": "产品"}),
        ("/api/v1/lost-reasons", {"name": "价格"}),
    ):
        assert (
            await client.post(url, json=body, headers=auth(app, org.mgr_east))
        ).status_code == 403
        assert (await client.post(url, json=body)).status_code == 401


async def test_opportunity_with_lines_defaults_amount_and_stage(app, client, maker, org, pipeline):
    product = (
        await client.post(
            "/api/v1/products",
            json={"name": "CRM 专业版", "unit_price": "1200.50"},
            headers=auth(app, org.admin),
        )
    ).json()
    customer = await make_customer(maker, org.rep_a, "商机客户")
    opp = await open_opportunity(
        app,
        client,
        org.rep_a,
        customer,
        lines=[
            {"product_id": product["id"], "quantity": 3},
            {"product_id": product["id"], "quantity": 1, "unit_price": "999.99"},
        ],
        expected_close_date="2027-01-31",
    )
    assert (
        opp["amount"] == "4601.49"
        and opp["stage"]["name"] == "初步接洽"
        and opp["status"] == "open"
    )
    assert opp["weighted_amount"] == "460.15"  # 10 %, rounded half up
    assert [line["total"] for line in opp["lines"]] == ["3601.50", "999.99"]
    assert opp["forecast_category"] == "pipeline" and opp["owner"]["id"] == org.rep_a.id


async def test_stage_moves_win_and_history(app, client, maker, org, pipeline, db):
    customer = await make_customer(maker, org.rep_a, "历史客户")
    opp = await open_opportunity(app, client, org.rep_a, customer, amount="10000")
    url = f"/api/v1/opportunities/{opp['id']}"
    headers = auth(app, org.rep_a)
    moved = await client.post(
        f"{url}/stage",
        json={"stage_id": stage(pipeline, "方案报价")["id"]},
        headers={**headers, "If-Match": '"1"'},
    )
    assert moved.status_code == 200 and moved.json()["forecast_category"] == "best_case"
    patched = await client.patch(
        url,
        json={"amount": "12000", "expected_close_date": "2027-02-28"},
        headers={**headers, "If-Match": moved.headers["ETag"]},
    )
    assert patched.status_code == 200 and patched.json()["weighted_amount"] == "7200.00"
    won = await client.post(
        f"{url}/win",
        json={"note": "签约"},
        headers={**headers, "If-Match": patched.headers["ETag"]},
    )
    assert won.status_code == 200 and won.json()["status"] == "won" and won.json()["closed_at"]
    history = (await client.get(f"{url}/history", headers=headers)).json()
    assert [(h["stage_name"], h["amount"], h["left_at"] is None) for h in history] == [
        ("初步接洽", "10000.00", False),
        ("方案报价", "10000.00", False),
        ("方案报价", "12000.00", False),
        ("赢单", "12000.00", True),
    ]
    assert all(a["left_at"] == b["entered_at"] for a, b in itertools.pairwise(history))
    actions = [
        e["action"]
        for e in (
            await client.get(f"/api/v1/customers/{customer.id}/timeline", headers=headers)
        ).json()["items"]
    ]
    assert actions[:4] == [
        "opportunity_won",
        "opportunity_updated",
        "opportunity_stage_changed",
        "opportunity_created",
    ]
    again = await client.post(
        f"{url}/win", json={}, headers={**headers, "If-Match": won.headers["ETag"]}
    )
    assert again.status_code == 409


async def test_losing_needs_a_reason_from_the_list(app, client, maker, org, pipeline):
    reason = (
        await client.post(
            "/api/v1/lost-reasons", json={"name": "价格太高"}, headers=auth(app, org.admin)
        )
    ).json()
    customer = await make_customer(maker, org.rep_a, "输单客户")
    opp = await open_opportunity(app, client, org.rep_a, customer, amount="500")
    url = f"/api/v1/opportunities/{opp['id']}/lose"
    headers = {**auth(app, org.rep_a), "If-Match": '"1"'}
    assert (await client.post(url, json={}, headers=headers)).status_code == 422
    assert (
        await client.post(url, json={"lost_reason_id": 999}, headers=headers)
    ).status_code == 422
    lost = await client.post(
        url, json={"lost_reason_id": reason["id"], "note": "竞品低价"}, headers=headers
    )
    assert lost.status_code == 200
    assert lost.json()["status"] == "lost" and lost.json()["lost_reason"]["name"] == "价格太高"
    closing = stage(pipeline, "赢单")["id"]
    direct = await client.post(
        f"/api/v1/opportunities/{opp['id']}/stage",
        json={"stage_id": closing},
        headers={**headers, "If-Match": lost.headers["ETag"]},
    )
    assert direct.status_code == 409


async def test_stage_holding_opportunities_cannot_be_deleted(app, client, maker, org, pipeline, db):
    customer = await make_customer(maker, org.rep_a, "占用")
    await open_opportunity(app, client, org.rep_a, customer, amount="1")
    first = stage(pipeline, "初步接洽")["id"]
    response = await client.delete(f"/api/v1/pipeline-stages/{first}", headers=auth(app, org.admin))
    assert response.status_code == 409
    assert await db.get(PipelineStage, first) is not None
    fresh = (
        await client.post(
            f"/api/v1/pipelines/{pipeline['id']}/stages",
            json={"name": "新阶段", "probability": 20},
            headers=auth(app, org.admin),
        )
    ).json()
    assert fresh["position"] == 4  # after the open stages, before the end stages
    assert (
        await client.delete(f"/api/v1/pipeline-stages/{fresh['id']}", headers=auth(app, org.admin))
    ).status_code == 204
    end = stage(pipeline, "赢单")["id"]
    assert (
        await client.delete(f"/api/v1/pipeline-stages/{end}", headers=auth(app, org.admin))
    ).status_code == 409


async def test_bad_opportunities_write_nothing(app, client, maker, org, pipeline, db):
    customer = await make_customer(maker, org.rep_a, "校验")
    theirs = await make_customer(maker, org.rep_b, "别人的")
    for body in (
        {"customer_id": customer.id, "title": "x", "amount": "-1"},
        {"customer_id": customer.id, "title": "x", "amount": "1.234"},
        {"customer_id": customer.id, "title": "x", "stage_id": stage(pipeline, "赢单")["id"]},
        {"customer_id": customer.id, "title": "x", "lines": [{"product_id": 999, "quantity": 1}]},
        {"customer_id": theirs.id, "title": "x"},
        {"customer_id": customer.id, "title": ""},
    ):
        response = await client.post(
            "/api/v1/opportunities", json=body, headers=auth(app, org.rep_a)
        )
        assert response.status_code == 422, body
    assert await db.scalar(select(func.count()).select_from(Opportunity)) == 0
    assert await db.scalar(select(func.count()).select_from(OpportunityHistory)) == 0


async def test_opportunities_are_scoped(app, client, maker, org, pipeline, db):
    mine = await open_opportunity(
        app, client, org.rep_a, await make_customer(maker, org.rep_a, "甲"), amount="1"
    )
    south = await open_opportunity(
        app, client, org.rep_d, await make_customer(maker, org.rep_d, "丁"), amount="2"
    )
    ids = lambda user: client.get("/api/v1/opportunities", headers=auth(app, user))  # noqa: E731
    assert [o["id"] for o in (await ids(org.rep_a)).json()["items"]] == [mine["id"]]
    assert [o["id"] for o in (await ids(org.mgr_east)).json()["items"]] == [mine["id"]]
    assert {o["id"] for o in (await ids(org.admin)).json()["items"]} == {mine["id"], south["id"]}
    url = f"/api/v1/opportunities/{south['id']}"
    headers = {**auth(app, org.rep_a), "If-Match": '"1"'}
    for method, path, body in (
        ("GET", "", None),
        ("GET", "/history", None),
        ("PATCH", "", {"amount": "9"}),
        ("DELETE", "", None),
        ("POST", "/stage", {"stage_id": stage(pipeline, "谈判")["id"]}),
        ("POST", "/win", {}),
        ("POST", "/lose", {"lost_reason_id": 1}),
    ):
        response = await client.request(method, f"{url}{path}", json=body, headers=headers)
        assert response.status_code == 404, (method, path)
    stored = await db.get(Opportunity, south["id"])
    assert stored.status == "open" and stored.amount_cents == 200 and stored.deleted_at is None


async def test_stale_opportunities_notify_the_owner_once_per_stage_entry(
    app, client, maker, settings, org, pipeline, db
):
    import datetime as dt

    import httpx

    from app.services.notifications import dispatch
    from app.services.relationship import schedule_stale_opportunity_notices

    customer = await make_customer(maker, org.rep_a, "停滞客户")
    opp = await open_opportunity(
        app, client, org.rep_a, customer, amount="100"
    )  # S1 "初步接洽": stale after 14 days
    now = dt.datetime.now(dt.UTC)
    assert await schedule_stale_opportunity_notices(maker, now + dt.timedelta(days=13)) == 0
    assert await schedule_stale_opportunity_notices(maker, now + dt.timedelta(days=15)) == 1
    assert await schedule_stale_opportunity_notices(maker, now + dt.timedelta(days=16)) == 0  # once
    async with httpx.AsyncClient() as http:
        assert (
            await dispatch(maker, settings, http, now=now + dt.timedelta(days=15, minutes=1))
        ).notified == 1
    [note] = (await client.get("/api/v1/notifications", headers=auth(app, org.rep_a))).json()[
        "items"
    ]
    assert note["kind"] == "stale_opportunity" and note["link"] == f"/opportunities/{opp['id']}"
    # A new stage entry starts a new clock (the next stage has no threshold: no notice).
    moved = await client.post(
        f"/api/v1/opportunities/{opp['id']}/stage",
        json={"stage_id": stage(pipeline, "需求确认")["id"]},
        headers={**auth(app, org.rep_a), "If-Match": '"1"'},
    )
    assert moved.status_code == 200
    assert await schedule_stale_opportunity_notices(maker, now + dt.timedelta(days=40)) == 0
