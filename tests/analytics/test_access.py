"""Analytics answer within the caller's data scope, refuse bad parameters clearly and follow
new data at once."""

from __future__ import annotations

import pytest

from tests.analytics.conftest import add_order, at, make_products
from tests.factories import auth, make_customer

WINDOW = "date_from=2026-01-01&date_to=2026-06-30"
ENDPOINTS = (
    f"/api/v1/analytics/persona?dimension=level&{WINDOW}",
    f"/api/v1/analytics/segments?dimensions=level&{WINDOW}",
    f"/api/v1/analytics/rfm?{WINDOW}",
    f"/api/v1/analytics/value-matrix?{WINDOW}",
    f"/api/v1/analytics/pyramid?{WINDOW}",
    "/api/v1/analytics/retention",
    f"/api/v1/analytics/basket?{WINDOW}&min_support=0.1",
    "/api/v1/analytics/lead-scores",
    f"/api/v1/analytics/products?{WINDOW}",
    "/api/v1/analytics/dimensions",
)


@pytest.mark.parametrize("url", ENDPOINTS)
async def test_analytics_need_a_signed_in_user(client, url):
    response = await client.get(url)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.fixture
async def two_reps(maker, org):
    """rep_a's customer bought 3 times for 300; rep_d's (south) once for 5000."""
    (product,) = await make_products(maker, 1)
    mine = await make_customer(maker, org.rep_a, level="A", created_at=at("2026-02-01"))
    theirs = await make_customer(maker, org.rep_d, level="B", created_at=at("2026-02-01"))
    for day in ("2026-03-01", "2026-04-01", "2026-05-01"):
        await add_order(maker, mine, at(day), 100, lines=[(product, 1, 100, 10)])
    await add_order(maker, theirs, at("2026-03-01"), 5000, lines=[(product, 50, 100, 10)])
    return mine, theirs


async def test_each_analysis_counts_only_customers_in_scope(app, client, org, two_reps):
    mine, _theirs = two_reps
    rep, admin = auth(app, org.rep_a), auth(app, org.admin)
    rfm = (await client.get(f"/api/v1/analytics/rfm?{WINDOW}", headers=rep)).json()
    assert [i["customer_id"] for i in rfm["items"]] == [mine.id]
    everyone = (await client.get(f"/api/v1/analytics/rfm?{WINDOW}", headers=admin)).json()
    assert everyone["customers_with_orders"] == 2
    pyramid = (await client.get(f"/api/v1/analytics/pyramid?{WINDOW}", headers=rep)).json()
    assert sum(t["revenue_cents"] for t in pyramid["tiers"]) == 300
    products = (await client.get(f"/api/v1/analytics/products?{WINDOW}", headers=rep)).json()
    assert [(r["quantity"], r["customers"]) for r in products["rows"]] == [(3, 1)]
    persona = (
        await client.get(f"/api/v1/analytics/persona?dimension=level&{WINDOW}", headers=rep)
    ).json()
    assert [b["value"] for b in persona["buckets"]] == ["A"]
    segments = (
        await client.get(f"/api/v1/analytics/segments?dimensions=level&{WINDOW}", headers=rep)
    ).json()
    assert segments["total"] == 1 and segments["rows"][0]["revenue_cents"] == 300
    matrix = (await client.get(f"/api/v1/analytics/value-matrix?{WINDOW}", headers=rep)).json()
    assert [p["customer_id"] for p in matrix["points"]] == [mine.id]
    retention = (await client.get("/api/v1/analytics/retention", headers=rep)).json()
    assert (retention["customers_with_orders"], retention["repeat_customers"]) == (1, 1)
    south = auth(app, org.rep_d)
    basket = (
        await client.get(f"/api/v1/analytics/basket?{WINDOW}&min_support=0.1", headers=south)
    ).json()
    assert basket["transactions"] == 1


async def test_recommendations_for_a_customer_outside_scope_are_not_found(
    app, client, org, two_reps
):
    _mine, theirs = two_reps
    response = await client.get(
        f"/api/v1/customers/{theirs.id}/recommendations", headers=auth(app, org.rep_a)
    )
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/v1/analytics/persona?dimension=shoe_size", "dimension"),
        ("/api/v1/analytics/persona?dimension=tag_group:999", "dimension"),
        ("/api/v1/analytics/persona?dimension=level&date_from=2026-05-01&date_to=2026-04-01",
         "date_from"),
        ("/api/v1/analytics/persona?dimension=level&date_from=2000-01-01&date_to=2026-01-01",
         "date_from"),
        ("/api/v1/analytics/persona?dimension=level&cohort_a=bought", "cohort_a"),
        ("/api/v1/analytics/persona?dimension=level&cohort_b=signed;colour=red", "cohort_b"),
        ("/api/v1/analytics/persona?dimension=level&cohort_b=signed;owner=x", "cohort_b"),
        ("/api/v1/analytics/persona?dimension=level&alpha=1.5", "alpha"),
        ("/api/v1/analytics/persona?dimension=age_band&age_bands=30,20", "age_bands"),
        ("/api/v1/analytics/segments?dimensions=", "dimensions"),
        ("/api/v1/analytics/segments?dimensions=level,source,city,industry", "dimensions"),
        ("/api/v1/analytics/segments?dimensions=level&measure=height", "measure"),
        ("/api/v1/analytics/basket?min_support=0", "min_support"),
        ("/api/v1/analytics/basket?min_support=1.5", "min_support"),
        ("/api/v1/analytics/basket?min_confidence=-0.1", "min_confidence"),
        ("/api/v1/analytics/pyramid?cuts=20,5,1", "cuts"),
        ("/api/v1/analytics/pyramid?cuts=1,5", "cuts"),
        ("/api/v1/analytics/rfm?segment=vip", "segment"),
        ("/api/v1/analytics/retention?months=0", "months"),
        ("/api/v1/analytics/rfm?limit=1000", "limit"),
    ],
)  # fmt: skip
async def test_bad_parameters_are_a_clear_problem(app, client, org, url, field):
    response = await client.get(url, headers=auth(app, org.admin))
    assert response.status_code == 422, response.text
    body = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert any(e["loc"][-1] == field for e in body["errors"]), body


async def test_a_new_order_shows_in_the_next_answer(app, client, maker, org, two_reps):
    mine, _theirs = two_reps
    headers = auth(app, org.rep_a)
    before = (await client.get(f"/api/v1/analytics/rfm?{WINDOW}", headers=headers)).json()
    await add_order(maker, mine, at("2026-06-01"), 700)
    after = (await client.get(f"/api/v1/analytics/rfm?{WINDOW}", headers=headers)).json()
    assert before["items"][0]["monetary_cents"] == 300
    assert (after["items"][0]["monetary_cents"], after["items"][0]["frequency"]) == (1000, 4)


async def test_a_changed_customer_shows_in_the_next_persona(app, client, maker, org, two_reps):
    mine, _theirs = two_reps
    headers = auth(app, org.rep_a)
    url = f"/api/v1/analytics/persona?dimension=level&{WINDOW}"
    first = (await client.get(url, headers=headers)).json()
    response = await client.patch(
        f"/api/v1/customers/{mine.id}",
        json={"level": "C"},
        headers={**headers, "If-Match": f'"{mine.version}"'},
    )
    assert response.status_code == 200, response.text
    second = (await client.get(url, headers=headers)).json()
    assert [b["value"] for b in first["buckets"]] == ["A"]
    assert [b["value"] for b in second["buckets"]] == ["C"]


async def test_orders_moved_by_a_merge_count_for_the_kept_customer(app, client, maker, org):
    kept = await make_customer(maker, org.rep_a, name="保留客户")
    duplicate = await make_customer(maker, org.rep_a, name="重复客户")
    await add_order(maker, kept, at("2026-03-01"), 100)
    await add_order(maker, duplicate, at("2026-04-01"), 200)
    headers = auth(app, org.admin)
    before = (await client.get(f"/api/v1/analytics/rfm?{WINDOW}", headers=headers)).json()
    assert sorted(i["monetary_cents"] for i in before["items"]) == [100, 200]
    response = await client.post(
        f"/api/v1/customers/{kept.id}/merge",
        json={"other_id": duplicate.id},
        headers={**headers, "If-Match": f'"{kept.version}"'},
    )
    assert response.status_code == 200, response.text
    after = (await client.get(f"/api/v1/analytics/rfm?{WINDOW}", headers=headers)).json()
    assert [(i["customer_id"], i["monetary_cents"], i["frequency"]) for i in after["items"]] == [
        (kept.id, 300, 2)
    ]
