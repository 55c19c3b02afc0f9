"""Every metric against a small example computed by hand (the numbers in the comments)."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from app.models.base import utcnow
from app.services.analytics.persona import _flag, two_proportion_z
from tests.analytics.conftest import add_order, at, make_products, make_tags, tag_span
from tests.factories import auth, make_customer

OCTOBER = "date_from=2026-10-01&date_to=2026-10-31"
HALF_YEAR = "date_from=2026-01-01&date_to=2026-06-30"


@pytest.fixture
async def persona_data(maker, org):
    """Window October 2026. Leads (created in it): c1 c2 c3 c5 c6; signed in it: c1 c4."""
    _group, tags = await make_tags(maker, "年龄段", ["18-20", "21-25"], exclusive=True)
    young, older = tags["18-20"], tags["21-25"]
    c1 = await make_customer(maker, org.rep_a, created_at=at("2026-10-05"),
                             signed_at=at("2026-10-20"), deal_status="signed")  # fmt: skip
    c2 = await make_customer(maker, org.rep_a, created_at=at("2026-10-06"))
    c3 = await make_customer(maker, org.rep_b, created_at=at("2026-10-07"))
    c4 = await make_customer(maker, org.rep_a, created_at=at("2026-09-01"),
                             signed_at=at("2026-10-10"), deal_status="signed")  # fmt: skip
    c5 = await make_customer(maker, org.rep_a, created_at=at("2026-10-08"))
    await make_customer(maker, org.rep_a, created_at=at("2026-10-09"))  # c6
    await make_customer(maker, org.rep_a, created_at=at("2026-11-05"))  # after the window
    await make_customer(maker, org.rep_d, created_at=at("2026-10-05"))  # south: outside east
    for customer in (c1, c4):
        await tag_span(maker, customer, older, at("2026-10-01"))
    for customer in (c2, c3):
        await tag_span(maker, customer, young, at("2026-10-06"))
    # c5 was 18-20 until the 15th, then 21-25: at the end of October it is 21-25.
    await tag_span(maker, c5, young, at("2026-10-08"), at("2026-10-15"))
    await tag_span(maker, c5, older, at("2026-10-15"))
    await add_order(maker, c1, at("2026-10-21"), 100_000)
    await add_order(maker, c4, at("2026-10-11"), 50_000)
    await add_order(maker, c4, at("2026-11-02"), 70_000)  # after the window
    return tags


async def test_persona_counts_shares_conversion_and_revenue_by_tag_history(
    app, client, org, persona_data
):
    group = (await client.get("/api/v1/analytics/dimensions", headers=auth(app, org.admin))).json()
    key = next(d["key"] for d in group if d["kind"] == "tag_group")
    response = await client.get(
        f"/api/v1/analytics/persona?dimension={key}&{OCTOBER}", headers=auth(app, org.mgr_east)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(c["key"], c["size"], c["revenue_cents"]) for c in body["cohorts"]] == [
        ("a", 5, 100_000),
        ("b", 2, 150_000),
    ]
    buckets = {b["value"]: b for b in body["buckets"]}
    assert set(buckets) == {"18-20", "21-25", None}
    assert buckets["18-20"]["a"] == {
        "count": 2, "share": 0.4, "conversion_rate": 0.0, "revenue_cents": 0
    }  # fmt: skip
    assert buckets["21-25"]["a"] == {
        "count": 2, "share": 0.4, "conversion_rate": 0.5, "revenue_cents": 100_000
    }  # fmt: skip
    assert buckets["21-25"]["b"] == {
        "count": 2, "share": 1.0, "conversion_rate": 1.0, "revenue_cents": 150_000
    }  # fmt: skip
    assert buckets[None]["a"]["count"] == 1 and buckets[None]["b"]["count"] == 0
    # 21-25: pooled p = 4/7, se = sqrt(4/7 · 3/7 · (1/5 + 1/2)) = 0.41404, z = 0.6 / se.
    older = buckets["21-25"]
    assert older["share_difference"] == pytest.approx(0.6)
    assert older["lift"] == pytest.approx(2.5)
    assert older["z"] == pytest.approx(1.44914, abs=1e-4)
    assert older["p_value"] == pytest.approx(0.14730, abs=1e-4)
    assert older["flag"] is None  # not significant, and too few customers for the test
    cloud = {t["tag"]: t for t in body["tag_cloud"]["a"]}
    assert (cloud["18-20"]["count"], cloud["21-25"]["count"], cloud["21-25"]["weight"]) == (
        2,
        2,
        1.0,
    )


async def test_persona_by_field_with_month_trend_and_single_cohort(app, client, org, persona_data):
    response = await client.get(
        f"/api/v1/analytics/persona?dimension=kind&cohort_b=none&granularity=month&{OCTOBER}",
        headers=auth(app, org.admin),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    # Admin sees the south lead too: 6 leads, all companies (the factory's default kind).
    assert [c["size"] for c in body["cohorts"]] == [6]
    (bucket,) = body["buckets"]
    assert (bucket["value"], bucket["a"]["count"], bucket["b"]) == ("company", 6, None)
    # October is the whole window and over: a complete period.
    assert body["trend"] == [
        {"period": "2026-10-01", "complete": True, "value": "company", "a_count": 6,
         "a_share": 1.0, "b_count": None, "b_share": None}
    ]  # fmt: skip


async def test_persona_cohort_filters_narrow_each_cohort(app, client, org, persona_data):
    response = await client.get(
        f"/api/v1/analytics/persona?dimension=deal_status&cohort_a=created;owner={org.rep_b.id}"
        f"&cohort_b=all;deal_status=signed&{OCTOBER}",
        headers=auth(app, org.admin),
    )
    assert response.status_code == 200, response.text
    assert [c["size"] for c in response.json()["cohorts"]] == [1, 2]


def test_two_proportion_z_test_matches_the_textbook_value():
    # 10/100 vs 30/100: pooled 0.2, se = sqrt(0.2 · 0.8 · 0.02) = 0.056569, z = 3.5355.
    z, p = two_proportion_z(10, 100, 30, 100)
    assert z == pytest.approx(3.535534, abs=1e-6)
    assert p == pytest.approx(math.erfc(3.535534 / math.sqrt(2)), rel=1e-6)
    assert p == pytest.approx(0.000407, abs=1e-6)
    assert two_proportion_z(0, 0, 3, 10) == (None, None)


def test_flags_name_the_direction_of_a_significant_difference():
    assert _flag({"count": 10}, {"count": 30}, 100, 100, 0.05)["flag"] == "acquire_more"
    assert _flag({"count": 30}, {"count": 10}, 100, 100, 0.05)["flag"] == "conversion_problem"
    assert _flag({"count": 30}, {"count": 10}, 100, 100, 0.0001)["flag"] is None
    # Significant in z but fewer than 5 expected in a cohort: no flag.
    assert _flag({"count": 0}, {"count": 3}, 1000, 3, 0.05)["flag"] is None


@pytest.fixture
async def rfm_data(maker, org):
    """Five customers; window H1 2026 ends 2026-07-01 00:00 Shanghai."""
    customers = {}
    orders = {
        "A": [("2026-06-29", 10_000), ("2026-06-01", 10_000), ("2026-05-01", 10_000)],
        "B": [("2026-06-20", 100_000)],
        "C": [("2026-03-01", 5_000), ("2026-02-01", 5_000)],
        "D": [("2026-01-15", 20_000)],
        "E": [("2026-06-25", 1_000), ("2026-06-26", 1_000), ("2026-06-27", 1_000),
              ("2026-06-28", 1_000)],
    }  # fmt: skip
    costs = {"A": 0.5, "B": 0.8, "C": 0.2, "D": 0.5, "E": 0.25}
    for key, placed in orders.items():
        customers[key] = await make_customer(maker, org.rep_a, name=f"客户{key}")
        for day, amount in placed:
            await add_order(maker, customers[key], at(day), amount, int(amount * costs[key]))
    await add_order(maker, customers["D"], at("2025-12-31"), 99_999)  # before the window
    await add_order(maker, customers["A"], at("2026-07-01", 0), 99_999)  # at the (open) end
    return customers


async def test_rfm_scores_and_segments(app, client, org, rfm_data):
    response = await client.get(f"/api/v1/analytics/rfm?{HALF_YEAR}", headers=auth(app, org.admin))
    assert response.status_code == 200, response.text
    body = response.json()
    got = {i["name"]: (i["recency_days"], i["frequency"], i["monetary_cents"], i["r"], i["f"],
                       i["m"], i["segment"]) for i in body["items"]}  # fmt: skip
    # recency: whole days from the last order (noon) to 07-01 00:00; ranks worst → best.
    assert got == {
        "客户A": (1, 3, 30_000, 5, 4, 4, "champions"),
        "客户B": (10, 1, 100_000, 3, 1, 5, "about_to_sleep"),
        "客户C": (121, 2, 10_000, 2, 3, 2, "at_risk"),
        "客户D": (166, 1, 20_000, 1, 1, 3, "lost"),
        "客户E": (2, 4, 4_000, 4, 5, 1, "loyal"),
    }
    assert [i["name"] for i in body["items"]] == ["客户B", "客户A", "客户D", "客户C", "客户E"]
    segments = {s["segment"]: (s["count"], s["revenue_cents"]) for s in body["segments"]}
    assert segments["champions"] == (1, 30_000) and segments["need_attention"] == (0, 0)
    assert sum(c["count"] for c in body["grid"]) == 5
    lost = await client.get(
        f"/api/v1/analytics/rfm?{HALF_YEAR}&segment=lost", headers=auth(app, org.admin)
    )
    assert [i["name"] for i in lost.json()["items"]] == ["客户D"] and lost.json()["total"] == 1


async def test_pyramid_tiers_by_the_ceil_rule(app, client, org, rfm_data):
    default = await client.get(
        f"/api/v1/analytics/pyramid?{HALF_YEAR}", headers=auth(app, org.admin)
    )
    tiers = {t["tier"]: t for t in default.json()["tiers"]}
    # n = 5: ceil(0.05) = ceil(0.25) = ceil(1) = 1, so A is the top spender and B, C are empty.
    assert [tiers[t]["count"] for t in "ABCD"] == [1, 0, 0, 4]
    custom = await client.get(
        f"/api/v1/analytics/pyramid?{HALF_YEAR}&cuts=20,40,60", headers=auth(app, org.admin)
    )
    body = custom.json()
    tiers = {t["tier"]: t for t in body["tiers"]}
    # spends: B 100000, A 30000, D 20000, C 10000, E 4000 (total 164000)
    assert [(tiers[t]["count"], tiers[t]["revenue_cents"]) for t in "ABCD"] == [
        (1, 100_000), (1, 30_000), (1, 20_000), (2, 14_000)
    ]  # fmt: skip
    assert tiers["D"]["revenue_share"] == pytest.approx(14_000 / 164_000)
    assert (tiers["D"]["min_spend_cents"], tiers["D"]["max_spend_cents"]) == (4_000, 10_000)
    assert (body["customers_with_spend"], body["customers_without_spend"]) == (5, 0)


async def test_value_matrix_quadrants_at_the_medians(app, client, org, rfm_data):
    response = await client.get(
        f"/api/v1/analytics/value-matrix?{HALF_YEAR}", headers=auth(app, org.admin)
    )
    body = response.json()
    # sales 4000, 10000, 20000, 30000, 100000 → median 20000; rates .75 .8 .5 .5 .2 → median .5
    assert body["sales_threshold_cents"] == 20_000
    assert body["margin_threshold"] == pytest.approx(0.5)
    quadrants = {q["quadrant"]: q["count"] for q in body["quadrants"]}
    assert quadrants == {"star": 2, "volume": 1, "niche": 2, "tail": 0}
    points = {p["name"]: p["quadrant"] for p in body["points"]}
    assert points == {"客户A": "star", "客户D": "star", "客户B": "volume", "客户C": "niche",
                      "客户E": "niche"}  # fmt: skip
    fixed = await client.get(
        f"/api/v1/analytics/value-matrix?{HALF_YEAR}&sales_threshold_cents=50000&margin_threshold=0.9",
        headers=auth(app, org.admin),
    )
    assert {q["quadrant"]: q["count"] for q in fixed.json()["quadrants"]}["tail"] == 4


@pytest.fixture
async def basket_data(maker, org):
    """Four orders: {1,2}, {1,2,3}, {1,3}, {2}."""
    p1, p2, p3 = await make_products(maker, 3)
    buyer = await make_customer(maker, org.rep_a)
    for day, items in (("2026-03-01", (p1, p2)), ("2026-03-02", (p1, p2, p3)),
                       ("2026-03-03", (p1, p3)), ("2026-03-04", (p2,))):  # fmt: skip
        lines = [(p, 1, 100, 50) for p in items]
        await add_order(maker, buyer, at(day), 100 * len(items), 50 * len(items), lines=lines)
    only_three = await make_customer(maker, org.rep_a)
    await add_order(maker, only_three, at("2025-01-01"), 100, lines=[(p3, 1, 100, 50)])
    return (p1, p2, p3), only_three


async def test_basket_itemsets_and_rules(app, client, org, basket_data):
    (p1, p2, p3), _ = basket_data
    response = await client.get(
        "/api/v1/analytics/basket?date_from=2026-01-01&date_to=2026-06-30"
        "&min_support=0.5&min_confidence=0.6",
        headers=auth(app, org.admin),
    )
    body = response.json()
    assert body["transactions"] == 4
    itemsets = {tuple(i["product_id"] for i in s["items"]): s["support"] for s in body["itemsets"]}
    assert itemsets == {(p1.id,): 0.75, (p2.id,): 0.75, (p3.id,): 0.5, (p1.id, p2.id): 0.5,
                        (p1.id, p3.id): 0.5}  # fmt: skip
    rules = [
        (
            [p["product_id"] for p in r["antecedent"]],
            [p["product_id"] for p in r["consequent"]],
            round(r["confidence"], 4),
            round(r["lift"], 4),
        )
        for r in body["rules"]
    ]
    assert rules == [
        ([p3.id], [p1.id], 1.0, 1.3333),
        ([p1.id], [p3.id], 0.6667, 1.3333),
        ([p1.id], [p2.id], 0.6667, 0.8889),
        ([p2.id], [p1.id], 0.6667, 0.8889),
    ]


async def test_recommendations_follow_the_rules_for_what_the_customer_lacks(
    app, client, org, basket_data
):
    (p1, _p2, p3), only_three = basket_data
    response = await client.get(
        f"/api/v1/customers/{only_three.id}/recommendations?min_support=0.5&min_confidence=0.6",
        headers=auth(app, org.rep_a),
    )
    assert response.status_code == 200, response.text
    (recommended,) = response.json()
    assert recommended["product"]["product_id"] == p1.id
    assert [p["product_id"] for p in recommended["because"]] == [p3.id]
    assert recommended["confidence"] == pytest.approx(1.0)


async def test_products_by_product_and_channel(app, client, maker, org):
    p1, p2 = await make_products(maker, 2)
    c1 = await make_customer(maker, org.rep_a)
    c2 = await make_customer(maker, org.rep_a)
    await add_order(maker, c1, at("2026-03-01"), 0, lines=[(p1, 2, 1000, 400)], channel="直销")
    await add_order(maker, c1, at("2026-04-01"), 0, lines=[(p1, 1, 1000, 400), (p2, 3, 500, 500)],
                    channel="电商")  # fmt: skip
    await add_order(maker, c2, at("2026-05-01"), 0, lines=[(p2, 1, 500, 100)], channel="电商")
    window = "date_from=2026-01-01&date_to=2026-06-30"
    by_product = await client.get(
        f"/api/v1/analytics/products?by=product&{window}", headers=auth(app, org.admin)
    )
    rows = {r["label"]: r for r in by_product.json()["rows"]}
    # p1: sales 3 × 1000, cost 3 × 400, 2 orders by c1 → repeat rate 1
    assert rows["产品1"] | {"key": None} == {
        "key": None, "label": "产品1", "sales_cents": 3000, "cost_cents": 1200,
        "margin_cents": 1800, "margin_rate": 0.6, "quantity": 3, "orders": 2, "customers": 1,
        "repeat_rate": 1.0,
    }  # fmt: skip
    # p2: sales 2000, cost 1500 + 100, customers c1 (once) and c2 (once)
    assert (rows["产品2"]["sales_cents"], rows["产品2"]["cost_cents"]) == (2000, 1600)
    assert (rows["产品2"]["customers"], rows["产品2"]["repeat_rate"]) == (2, 0.0)
    by_channel = await client.get(
        f"/api/v1/analytics/products?by=channel&{window}", headers=auth(app, org.admin)
    )
    channels = {r["key"]: r["sales_cents"] for r in by_channel.json()["rows"]}
    assert channels == {"直销": 2000, "电商": 3000}


async def test_segments_statistics_of_the_measure(app, client, maker, org):
    a = [await make_customer(maker, org.rep_a, level="A") for _ in range(3)]
    await make_customer(maker, org.rep_a, level="B")
    for customer, amount in zip(a, (100, 300, 300), strict=True):
        await add_order(maker, customer, at("2026-03-01"), amount)
    response = await client.get(
        "/api/v1/analytics/segments?dimensions=level&measure=revenue"
        "&date_from=2026-01-01&date_to=2026-06-30",
        headers=auth(app, org.admin),
    )
    assert response.status_code == 200, response.text
    rows = {r["values"]["level"]: r for r in response.json()["rows"]}
    stats = rows["A"]["stats"]
    # [100, 300, 300]: linear quantiles at positions q · (n − 1).
    assert stats["mean"] == pytest.approx(700 / 3)
    assert (stats["median"], stats["mode"], stats["min"], stats["max"]) == (300, 300, 100, 300)
    assert (stats["p10"], stats["p25"], stats["p75"], stats["p90"]) == (140, 200, 300, 300)
    assert (rows["A"]["count"], rows["A"]["share"], rows["A"]["revenue_cents"]) == (3, 0.75, 700)
    assert rows["B"]["stats"]["mean"] == 0 and rows["B"]["count"] == 1


async def test_retention_matrix_repeat_rate_and_churn_risk(app, client, maker, org):
    today = utcnow().astimezone(at("2026-01-01").tzinfo).date()

    def month_start(back: int):
        index = today.year * 12 + today.month - 1 - back
        return f"{index // 12:04d}-{index % 12 + 1:02d}-15"

    x = await make_customer(maker, org.rep_a, name="X")
    await add_order(maker, x, at(month_start(2)), 100)
    await add_order(maker, x, at(month_start(1)), 100)
    y = await make_customer(maker, org.rep_a, name="Y")
    await add_order(maker, y, at(month_start(1)), 100)
    z = await make_customer(maker, org.rep_a, name="Z")
    await add_order(maker, z, at(today.isoformat(), 0), 100)
    w = await make_customer(maker, org.rep_a, name="W")
    now = utcnow()
    await add_order(maker, w, now - dt.timedelta(days=100), 100)
    await add_order(maker, w, now - dt.timedelta(days=90), 100)
    response = await client.get(
        "/api/v1/analytics/retention?months=3", headers=auth(app, org.admin)
    )
    body = response.json()
    assert [(c["size"], c["retention"]) for c in body["cohorts"]] == [
        (1, [1.0, 1.0, 0.0]),
        (1, [1.0, 0.0, None]),
        (1, [1.0, None, None]),
    ]
    assert (body["customers_with_orders"], body["repeat_customers"]) == (4, 2)
    assert body["repeat_purchase_rate"] == 0.5
    (risk,) = body["churn_risk"]
    assert (risk["name"], risk["orders"]) == ("W", 2)
    assert risk["mean_gap_days"] == pytest.approx(10, abs=0.01)
    assert risk["overdue_ratio"] == pytest.approx(9, abs=0.01)


async def test_lead_score_weights_are_naive_bayes_log_ratios(app, client, maker, org):
    old = utcnow() - dt.timedelta(days=200)
    for _ in range(5):
        await make_customer(maker, org.rep_a, source="推荐", created_at=old,
                            signed_at=old, deal_status="signed")  # fmt: skip
        await make_customer(maker, org.rep_a, source="地推", created_at=old)
    fresh = await make_customer(maker, org.rep_a, source="推荐", name="新线索")
    await make_customer(maker, org.rep_a, source="地推", name="冷线索")
    response = await client.get("/api/v1/analytics/lead-scores", headers=auth(app, org.admin))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"]["trained_on"], body["model"]["positives"]) == (10, 5)
    assert body["model"]["holdout_size"] == 2
    top = body["items"][0]
    assert (top["customer_id"], top["name"]) == (fresh.id, "新线索")
    # source: 2 values among the examples; P(推荐|signed) = 6/7, P(推荐|not) = 1/7 → log 6.
    source = next(c for c in top["top_attributes"] if c["attribute"] == "source")
    assert source == {"attribute": "source", "value": "推荐", "weight": pytest.approx(math.log(6))}
    # Every other attribute is the same for all: the odds are the prior (1) times 6.
    assert top["probability"] == pytest.approx(6 / 7)
    assert body["items"][-1]["probability"] == pytest.approx(1 / 7)
