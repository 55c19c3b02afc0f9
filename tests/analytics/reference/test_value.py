"""RFM and the customer pyramid against plain-Python computations of their definitions."""

from __future__ import annotations

from collections import Counter

import pytest

from app.services.analytics.value import RFM_DEFINITION, SEGMENTS

from . import oracle
from .data import DATE_FROM, DATE_TO, WIN_END, WIN_START

WINDOW = {"date_from": DATE_FROM.isoformat(), "date_to": DATE_TO.isoformat()}


async def rfm_pages(client, headers, **params) -> tuple[dict, list[dict]]:
    first = None
    items: list[dict] = []
    offset = 0
    while True:
        response = await client.get(
            "/api/v1/analytics/rfm",
            params={**WINDOW, "limit": 200, "offset": offset, **params},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        page = response.json()
        first = first or page
        items += page["items"]
        offset += 200
        if offset >= page["total"]:
            return first, items


def test_the_grid_used_here_is_the_documented_one():
    assert oracle.grid_from_definition(RFM_DEFINITION) == oracle.RFM_GRID_TEXT


async def test_rfm_matches_the_definition_for_every_customer(client, admin, ledger):
    expected = oracle.rfm(ledger, WIN_START, WIN_END)
    head, items = await rfm_pages(client, admin)

    assert head["window"] == WINDOW
    assert head["customers_with_orders"] == head["total"] == len(expected) == len(items)
    got = {item["customer_id"]: {k: v for k, v in item.items() if k != "name"} for item in items}
    assert got == expected
    # Highest monetary first, ties by id.
    assert [i["customer_id"] for i in items] == sorted(
        expected, key=lambda c: (-expected[c]["monetary_cents"], c)
    )

    n = len(expected)
    segments = {s["segment"]: s for s in head["segments"]}
    assert list(segments) == list(SEGMENTS)
    for name in SEGMENTS:
        members = [e for e in expected.values() if e["segment"] == name]
        assert segments[name] == {
            "segment": name,
            "count": len(members),
            "share": pytest.approx(len(members) / n),
            "revenue_cents": sum(e["monetary_cents"] for e in members),
        }
    cells = Counter((e["r"], e["f"]) for e in expected.values())
    revenue = Counter()
    for e in expected.values():
        revenue[e["r"], e["f"]] += e["monetary_cents"]
    assert [(c["r"], c["f"]) for c in head["grid"]] == [
        (r, f) for r in range(5, 0, -1) for f in range(1, 6)
    ]
    for cell in head["grid"]:
        key = (cell["r"], cell["f"])
        assert (cell["count"], cell["revenue_cents"]) == (cells[key], revenue[key])
        assert cell["segment"] == oracle.RFM_GRID_TEXT[cell["r"]][cell["f"] - 1]

    await check_rfm_edge_cases(client, admin, ledger)
    await check_rfm_segment_filter(client, admin, ledger)


async def check_rfm_edge_cases(client, admin, ledger):
    """The generated ledger really has ties and boundary orders (else the checks prove less)."""
    expected = oracle.rfm(ledger, WIN_START, WIN_END)
    edge = ledger.edge
    assert expected[edge["at_window_start"]]["recency_days"] == (DATE_TO - DATE_FROM).days + 1
    assert expected[edge["just_before_window_end"]]["recency_days"] == 0
    assert expected[edge["just_before_window_end"]]["frequency"] == 1
    assert edge["just_before_window"] not in expected
    assert edge["at_window_end"] not in expected
    assert edge["deleted"] not in expected
    assert expected[edge["zero_spend"]]["monetary_cents"] == 0
    outside_only = {o.customer_id for o in ledger.live_orders()} - set(expected)
    assert len(outside_only) > 20
    frequencies = Counter(e["frequency"] for e in expected.values())
    monetary = Counter(e["monetary_cents"] for e in expected.values())
    assert max(frequencies.values()) > 20 and max(monetary.values()) > 10
    # Ties straddle a quintile boundary: equal values, one score.
    assert {e["f"] for e in expected.values() if e["frequency"] == 1} == {1}

    _, items = await rfm_pages(client, admin)
    listed = {i["customer_id"]: i for i in items}
    assert listed[edge["at_window_start"]]["recency_days"] == 365
    assert listed[edge["just_before_window_end"]]["recency_days"] == 0
    assert edge["at_window_end"] not in listed and edge["just_before_window"] not in listed


async def check_rfm_segment_filter(client, admin, ledger):
    expected = oracle.rfm(ledger, WIN_START, WIN_END)
    for segment in SEGMENTS:
        head, items = await rfm_pages(client, admin, segment=segment)
        wanted = sorted(
            (c for c, e in expected.items() if e["segment"] == segment),
            key=lambda c: (-expected[c]["monetary_cents"], c),
        )
        assert head["total"] == len(wanted), segment
        assert [i["customer_id"] for i in items] == wanted, segment
        assert head["customers_with_orders"] == len(expected)
    populated = {e["segment"] for e in expected.values()}
    assert len(populated) >= 9, populated


async def test_pyramid_matches_the_definition(client, admin, ledger):
    for cuts in [None, ("2", "10", "30"), ("2.5", "12.5", "50")]:
        await check_pyramid(client, admin, ledger, cuts)


async def check_pyramid(client, admin, ledger, cuts):
    expected = oracle.pyramid(ledger, WIN_START, WIN_END, cuts or ("1", "5", "20"))
    params = dict(WINDOW)
    if cuts:
        params["cuts"] = ",".join(cuts)
    response = await client.get("/api/v1/analytics/pyramid", params=params, headers=admin)
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["window"] == WINDOW
    for tier in expected["tiers"]:
        tier["revenue_share"] = pytest.approx(tier["revenue_share"])
    assert {k: got[k] for k in expected} == expected
    assert sum(t["count"] for t in got["tiers"]) == got["customers_with_spend"]
    assert got["customers_without_spend"] > 15  # no orders, outside only, spend 0, boundary
