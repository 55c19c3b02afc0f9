"""Analytics see orders recorded after their first read (on SQLite too: the loader must share
the app's SQLite library, see app/services/analytics/frames.py)."""

from __future__ import annotations

import datetime as dt

from app.models import Order
from tests.factories import make_customer

from .data import TZ


async def rfm_total(client, headers) -> int:
    response = await client.get(
        "/api/v1/analytics/rfm",
        params={"date_from": "2026-01-01", "date_to": "2026-12-31"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return response.json()["customers_with_orders"]


async def test_new_orders_show_up_in_the_next_answer(app, client, maker, org, admin):
    at = dt.datetime(2026, 6, 1, 12, tzinfo=TZ)
    for expected in (1, 2):
        customer = await make_customer(maker, org.rep_a)
        async with maker() as session, session.begin():
            session.add(Order(customer_id=customer.id, ordered_at=at, amount_cents=1, source="api"))
        assert await rfm_total(client, admin) == expected
