"""Retention and churn against a plain-Python computation of RETENTION_DEFINITION."""

from __future__ import annotations

import datetime as dt

import pytest

from app.routers import analytics as analytics_router

from . import oracle
from .data import NOW, TZ


@pytest.fixture
def clock(monkeypatch):
    """The retention endpoint measures from utcnow(): pin it to the ledger's NOW."""
    monkeypatch.setattr(analytics_router, "utcnow", lambda: NOW.astimezone(dt.UTC))


async def retention_pages(client, headers, **params) -> tuple[dict, list[dict]]:
    first: dict = {}
    items: list[dict] = []
    offset = 0
    while True:
        response = await client.get(
            "/api/v1/analytics/retention",
            params={"limit": 200, "offset": offset, **params},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        page = response.json()
        first = first or page
        items += page["churn_risk"]
        offset += 200
        if offset >= page["churn_total"]:
            return first, items


async def test_retention_matches_the_definition(client, admin, ledger, clock):
    for months, factor in [(12, 2.0), (18, 2.0), (6, 1.5)]:
        await check_retention(client, admin, ledger, months, factor)
    await check_retention_edge_cases(client, admin, ledger)


async def check_retention(client, admin, ledger, months, factor):
    expected = oracle.retention(ledger, NOW, TZ, months, factor)
    got, churn = await retention_pages(client, admin, months=months, churn_factor=factor)

    assert got["customers_with_orders"] == expected["customers_with_orders"]
    assert got["repeat_customers"] == expected["repeat_customers"]
    assert got["repeat_purchase_rate"] == pytest.approx(expected["repeat_purchase_rate"])
    assert [c["cohort"] for c in got["cohorts"]] == [c["cohort"] for c in expected["cohorts"]]
    for have, want in zip(got["cohorts"], expected["cohorts"], strict=True):
        assert have["size"] == want["size"], want["cohort"]
        assert have["retention"] == [
            None if v is None else pytest.approx(v) for v in want["retention"]
        ], want["cohort"]

    assert got["churn_total"] == len(expected["churn"])
    assert [c["customer_id"] for c in churn] == [c["customer_id"] for c in expected["churn"]]
    for have, want in zip(churn, expected["churn"], strict=True):
        assert dt.datetime.fromisoformat(have["last_order_at"]) == want["last_order_at"]
        assert have["orders"] == want["orders"]
        for key in ("mean_gap_days", "days_since"):
            assert have[key] == pytest.approx(want[key], rel=1e-9), (want["customer_id"], key)
        assert have["overdue_ratio"] == pytest.approx(want["overdue_ratio"], rel=1e-6)


async def check_retention_edge_cases(client, admin, ledger):
    expected = oracle.retention(ledger, NOW, TZ, 12, 2.0)
    cohorts = {c["cohort"]: c for c in expected["cohorts"]}
    # Month 0 is always everybody; the current month (2026-12) has begun, later ones are null.
    assert all(c["retention"][0] == 1.0 for c in expected["cohorts"])
    assert cohorts["2026-12"]["retention"][1:] == [None] * 11
    edge = ledger.edge
    first = {
        name: min(o.ordered_at for o in ledger.orders if o.customer_id == edge[name])
        for name in ("cohort_shanghai_april", "cohort_shanghai_may")
    }
    assert first["cohort_shanghai_april"].month == 3  # March in UTC, April in Shanghai
    assert first["cohort_shanghai_may"].month == 4
    churned = {c["customer_id"] for c in expected["churn"]}
    assert edge["same_instant"] not in churned
    assert len(churned) > 20

    got, churn = await retention_pages(client, admin)
    listed = {c["customer_id"] for c in churn}
    assert edge["same_instant"] not in listed
    assert got["customers_with_orders"] == expected["customers_with_orders"]
    # The customer whose only order comes after the clock does not count.
    assert edge["only_future"] not in {
        o.customer_id for o in ledger.live_orders() if o.ordered_at <= NOW
    }
