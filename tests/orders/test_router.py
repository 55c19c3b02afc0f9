"""The orders ledger: single and bulk recording, idempotence per external id, scope."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.models import Order, OrderLine, Product
from tests.factories import auth, make_customer, make_org

WHEN = "2026-11-20T10:00:00+08:00"


@pytest.fixture
async def org(maker):
    return await make_org(maker)


@pytest.fixture
async def product(maker):
    async with maker() as session, session.begin():
        item = Product(name="标准版", unit_price_cents=6800_00, unit_cost_cents=1200_00)
        session.add(item)
        await session.flush()
        return item


def order(customer_id, product_id, *, external_id=None, quantity=2, **line):
    body = {
        "customer_id": customer_id,
        "ordered_at": WHEN,
        "channel": "电商",
        "lines": [{"product_id": product_id, "quantity": quantity, **line}],
    }
    if external_id is not None:
        body["external_id"] = external_id
    return body


async def count(db, model):
    await db.rollback()
    return await db.scalar(select(func.count()).select_from(model))


async def test_order_is_recorded_with_product_prices_by_default(app, client, maker, org, product):
    customer = await make_customer(maker, org.rep_a)
    body = order(customer.id, product.id, unit_cost="1000.50")
    response = await client.post("/api/v1/orders", json=body, headers=auth(app, org.rep_a))
    assert response.status_code == 201, response.text
    out = response.json()
    assert (out["amount"], out["cost"], out["channel"], out["source"]) == (
        "13600.00",
        "2001.00",
        "电商",
        "api",
    )
    assert out["lines"] == [
        {"product_id": product.id, "quantity": 2, "unit_price": "6800.00", "unit_cost": "1000.50"}
    ]
    read = await client.get(response.headers["Location"], headers=auth(app, org.mgr_east))
    assert read.status_code == 200 and read.json() == out


async def test_same_external_id_answers_the_recorded_order(app, client, maker, org, product, db):
    customer = await make_customer(maker, org.rep_a)
    headers = auth(app, org.rep_a)
    body = order(customer.id, product.id, external_id="ERP-1")
    first = await client.post("/api/v1/orders", json=body, headers=headers)
    again = await client.post("/api/v1/orders", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert await count(db, Order) == 1


async def test_orders_are_recorded_only_for_customers_one_may_change(
    app, client, maker, org, product, db
):
    theirs = await make_customer(maker, org.rep_b)
    body = order(theirs.id, product.id)
    response = await client.post("/api/v1/orders", json=body, headers=auth(app, org.rep_a))
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "orders[0].customer_id"]
    assert (await client.post("/api/v1/orders", json=body)).status_code == 401
    assert await count(db, Order) == 0


async def test_orders_outside_scope_are_404_and_unlisted(app, client, maker, org, product):
    customer = await make_customer(maker, org.rep_a)
    created = await client.post(
        "/api/v1/orders", json=order(customer.id, product.id), headers=auth(app, org.rep_a)
    )
    url = f"/api/v1/orders/{created.json()['id']}"
    assert (await client.get(url, headers=auth(app, org.rep_b))).status_code == 404
    listed = await client.get("/api/v1/orders", headers=auth(app, org.rep_b))
    assert listed.json()["items"] == []
    mine = await client.get(
        "/api/v1/orders", params={"customer_id": customer.id}, headers=auth(app, org.rep_a)
    )
    assert [o["id"] for o in mine.json()["items"]] == [created.json()["id"]]


async def test_bulk_records_many_and_is_idempotent_per_external_id(
    app, client, maker, org, product, db
):
    customers = [await make_customer(maker, org.rep_a) for _ in range(3)]
    orders = [
        order(customers[i % 3].id, product.id, external_id=f"POS-{i}", quantity=1 + i % 4)
        for i in range(2500)
    ]
    headers = auth(app, org.mgr_east)
    response = await client.post("/api/v1/orders/bulk", json={"orders": orders}, headers=headers)
    assert response.status_code == 200, response.text
    out = response.json()
    assert (out["created"], out["existing"]) == (2500, 0)
    assert [item["index"] for item in out["items"]] == list(range(2500))
    again = await client.post(
        "/api/v1/orders/bulk",
        json={"orders": [*orders[:10], orders[0] | {"external_id": "new"}]},
        headers=headers,
    )
    assert (again.json()["created"], again.json()["existing"]) == (1, 10)
    assert again.json()["items"][3]["id"] == out["items"][3]["id"]
    assert await count(db, Order) == 2501
    assert await count(db, OrderLine) == 2501
    amounts = await db.scalar(select(func.sum(Order.amount_cents)))
    assert amounts == sum((1 + i % 4) * 6800_00 for i in range(2500)) + 6800_00


async def test_bulk_is_all_or_nothing_and_lists_every_problem(app, client, maker, org, product, db):
    customer = await make_customer(maker, org.rep_a)
    orders = [
        order(customer.id, product.id, external_id="A"),
        order(customer.id, 999_999),
        order(customer.id, product.id, external_id="A"),
        order(10**9, product.id),
    ]
    response = await client.post(
        "/api/v1/orders/bulk", json={"orders": orders}, headers=auth(app, org.rep_a)
    )
    assert response.status_code == 422
    locations = [e["loc"][1] for e in response.json()["errors"]]
    assert locations == [
        "orders[1].lines[0].product_id",
        "orders[2].external_id",
        "orders[3].customer_id",
    ]
    assert await count(db, Order) == 0


async def test_bad_order_input_is_refused(app, client, maker, org, product):
    customer = await make_customer(maker, org.rep_a)
    headers = auth(app, org.rep_a)
    naive = order(customer.id, product.id) | {"ordered_at": "2026-11-20T10:00:00"}
    empty = order(customer.id, product.id) | {"lines": []}
    zero = order(customer.id, product.id, quantity=0)
    for body in (naive, empty, zero):
        assert (await client.post("/api/v1/orders", json=body, headers=headers)).status_code == 422
    too_many = {"orders": [order(customer.id, product.id)] * 10_001}
    response = await client.post("/api/v1/orders/bulk", json=too_many, headers=headers)
    assert response.status_code == 422  # over 1 MiB, but bulk bodies may be larger
    assert "10000" in response.text


async def test_ten_thousand_orders_in_one_call(app, client, maker, org, product, db):
    customer = await make_customer(maker, org.rep_a)
    orders = [order(customer.id, product.id, external_id=f"SHOP-{i:05d}") for i in range(10_000)]
    response = await client.post(
        "/api/v1/orders/bulk", json={"orders": orders}, headers=auth(app, org.rep_a)
    )
    assert response.status_code == 200, response.text[:500]
    assert response.json()["created"] == 10_000
    assert await count(db, Order) == 10_000


async def test_a_number_is_no_order_time(app, client, org):
    """`ordered_to=0` was read as a Unix timestamp (found by Schemathesis): ISO 8601 only."""
    headers = auth(app, org.rep_a)
    for value in ("0", "1735689600"):
        response = await client.get(f"/api/v1/orders?ordered_to={value}", headers=headers)
        assert response.status_code == 422, value
    ok = await client.get("/api/v1/orders?ordered_to=2026-11-01T10:00:00%2B08:00", headers=headers)
    assert ok.status_code == 200


async def test_a_number_is_no_order_time_in_a_body_and_bulk_is_no_order_id(
    app, client, maker, org, product
):
    """Both found by Schemathesis: `ordered_at: 0` was 1970-01-01, GET /orders/bulk a 422."""
    customer = await make_customer(maker, org.rep_a, "甲")
    headers = auth(app, org.rep_a)
    body = {**order(customer.id, product.id), "ordered_at": 0}
    bulk = await client.post("/api/v1/orders/bulk", json={"orders": [body]}, headers=headers)
    assert bulk.status_code == 422
    wrong_method = await client.get("/api/v1/orders/bulk", headers=headers)
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "POST")
