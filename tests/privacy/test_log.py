"""The personal-data log (SPEC J4): every export is logged with who, filters, rows and reason;
admins read it page by page."""

from __future__ import annotations

from sqlalchemy import select

from app.models import PersonalDataLog
from tests.factories import auth, make_customer

LOG = "/api/v1/personal-data-log"


async def test_every_export_is_logged_with_filters_rows_and_reason(app, client, maker, org):
    for i in range(3):
        await make_customer(maker, org.rep_a, f"客户{i}", level="A" if i else "B")
    csv = await client.get(
        "/api/v1/exports/customers",
        params={"level": "A", "reason": "季度回访名单"},
        headers=auth(app, org.rep_a),
    )
    assert csv.status_code == 200, csv.text
    xlsx = await client.get(
        "/api/v1/exports/orders", params={"format": "xlsx"}, headers=auth(app, org.rep_a)
    )
    assert xlsx.status_code == 200, xlsx.text
    for kind in ("opportunities", "contracts"):
        response = await client.get(
            f"/api/v1/exports/{kind}", params={"customer_id": 7}, headers=auth(app, org.rep_a)
        )
        assert response.status_code == 200, response.text
    async with maker() as session:
        entries = (
            await session.scalars(select(PersonalDataLog).order_by(PersonalDataLog.id))
        ).all()
    assert [e.action for e in entries] == [
        "export.customers",
        "export.orders",
        "export.opportunities",
        "export.contracts",
    ]
    customers, orders, opportunities, _ = entries
    assert customers.actor_id == org.rep_a.id and customers.reason == "季度回访名单"
    assert customers.filters == {"level": "A"} and customers.row_count == 2
    assert orders.filters == {"format": "xlsx"} and orders.row_count == 0
    assert orders.reason is None
    assert opportunities.customer_id == 7 and opportunities.row_count == 0


async def test_admins_read_the_log_newest_first_by_cursor(app, client, maker, org):
    customer = await make_customer(maker, org.rep_a, "客户")
    for reason in ("one", "two", "three"):
        response = await client.get(
            "/api/v1/exports/customers", params={"reason": reason}, headers=auth(app, org.admin)
        )
        assert response.status_code == 200
    erased = await client.post(
        f"/api/v1/customers/{customer.id}/erase",
        json={"reason": "four"},
        headers=auth(app, org.admin),
    )
    assert erased.status_code == 200, erased.text
    first = await client.get(LOG, params={"limit": 3}, headers=auth(app, org.admin))
    assert first.status_code == 200, first.text
    page = first.json()
    assert [e["reason"] for e in page["items"]] == ["four", "three", "two"]
    assert page["items"][0]["action"] == "personal_data.erase"
    assert page["items"][0]["customer_id"] == customer.id
    assert page["items"][0]["actor"] == {"id": org.admin.id, "display_name": "Admin"}
    assert page["items"][1]["row_count"] == 1
    rest = await client.get(
        LOG, params={"limit": 3, "cursor": page["next_cursor"]}, headers=auth(app, org.admin)
    )
    assert [e["reason"] for e in rest.json()["items"]] == ["one"]
    assert rest.json()["next_cursor"] is None
    only = await client.get(LOG, params={"customer_id": customer.id}, headers=auth(app, org.admin))
    assert [e["reason"] for e in only.json()["items"]] == ["four"]
    exports = await client.get(
        LOG, params={"action": "export.customers"}, headers=auth(app, org.admin)
    )
    assert len(exports.json()["items"]) == 3


async def test_the_log_needs_the_permission(app, client, org):
    assert (await client.get(LOG)).status_code == 401
    assert (await client.get(LOG, headers=auth(app, org.mgr_east))).status_code == 403
    bad = await client.get(LOG, params={"action": "nope"}, headers=auth(app, org.admin))
    assert bad.status_code == 422
