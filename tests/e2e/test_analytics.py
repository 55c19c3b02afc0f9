"""Customer analytics on a phone-sized Chromium (SPEC H1–H9): the hub a manager reaches from the
Me workbench and one screen per analysis, each checked against the API's answer on the demo data.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

SHANGHAI = ZoneInfo("Asia/Shanghai")

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def mgr1_api(api_as: Any) -> Any:
    return api_as("mgr1")


def last_year() -> dict[str, str]:
    """The screens' default window: the 365 days up to today in the browser's zone (Shanghai)."""
    today = dt.datetime.now(SHANGHAI).date()
    return {
        "date_from": (today - dt.timedelta(days=364)).isoformat(),
        "date_to": today.isoformat(),
    }


def open_view(page: Any, login: Any, path: str, testid: str, username: str = "mgr1") -> None:
    login(page, username, landing="today")
    page.goto(path)
    expect(page.get_by_test_id(testid)).to_be_visible()


def pick_dropdown(page: Any, menu: Any, index: int, option: str) -> None:
    """Open the `index`-th item of a Vant dropdown menu and pick the option with that text."""
    menu.locator(".van-dropdown-menu__item").nth(index).click()
    popup = page.locator(".van-dropdown-item__content:visible")
    popup.locator(
        ".van-dropdown-item__option", has_text=re.compile(rf"^\s*{re.escape(option)}\s*$")
    ).click()
    expect(popup).to_have_count(0)


def expect_counts(page: Any, testid: str, key: str, items: list[dict[str, Any]]) -> None:
    """Each item's element (`data-<key>` = its `key`) shows its `count`."""
    for item in items:
        located = page.locator(f"[data-testid={testid}][data-{key}={item[key]}]")
        expect(located).to_contain_text(str(item["count"]))


@pytest.mark.e2e
def test_manager_reaches_the_analytics_hub_from_me(page: Any, login: Any, shot: Any) -> None:
    login(page, "mgr1", landing="today")
    page.get_by_test_id("tab-me").click()
    page.get_by_test_id("workbench-analytics").click()
    page.wait_for_url("**/analytics")
    expect(page.locator(".van-nav-bar__title")).to_have_text("客户分析")
    cards = page.get_by_test_id("analytics-card")
    expect(cards).to_have_count(9)
    expect(cards.first).to_contain_text("客户画像对比")
    shot(page, "analytics-hub")
    page.locator("[data-testid=analytics-card][data-view=rfm]").click()
    page.wait_for_url("**/analytics/rfm")
    expect(page.get_by_test_id("rfm-grid")).to_be_visible()


@pytest.mark.e2e
def test_reps_workbench_has_no_analytics_entry(page: Any, login: Any) -> None:
    login(page, "rep1", landing="today")
    page.get_by_test_id("tab-me").click()
    expect(page.get_by_test_id("workbench-dashboard")).to_be_visible()
    expect(page.get_by_test_id("workbench-analytics")).to_have_count(0)


@pytest.mark.e2e
def test_persona_compares_leads_and_signed_with_flags(
    page: Any, login: Any, shot: Any, mgr1_api: Any
) -> None:
    expected = mgr1_api.get(
        "/analytics/persona", dimension="age_band", granularity="month", **last_year()
    )
    flagged = [b for b in expected["buckets"] if b["flag"]]
    open_view(page, login, "/analytics/persona", "persona-view")

    buckets = page.get_by_test_id("persona-bucket")
    expect(buckets).to_have_count(len(expected["buckets"]))
    cohorts = page.get_by_test_id("persona-cohorts")
    expect(cohorts).to_contain_text(str(expected["cohorts"][0]["size"]))
    expect(cohorts).to_contain_text(str(expected["cohorts"][1]["size"]))
    # the demo's deliberate signal: young leads vs older signed customers
    assert flagged, "the demo data should flag at least one age band"
    flags = page.get_by_test_id("persona-flag")
    expect(flags).to_have_count(len(flagged))
    first = flagged[0]
    badge = page.locator(
        f"[data-testid=persona-bucket][data-value='{first['value']}'] [data-testid=persona-flag]"
    )
    expect(badge).to_have_text(
        "多获取此类客户" if first["flag"] == "acquire_more" else "转化有问题"
    )
    expect(page.get_by_test_id("persona-stats").first).to_contain_text("提升度")
    expect(page.get_by_test_id("persona-stats").first).to_contain_text("p 值")
    # the trend of the first flagged bucket, and a word cloud per cohort
    expect(page.get_by_test_id("persona-trend").locator("canvas")).to_have_count(1)
    # periods the window cuts or that are not over are drawn apart, with a note saying so
    trend = [p for p in expected["trend"] if p["value"] == first["value"]]
    assert trend, "the flagged bucket should have a trend"
    note = page.get_by_test_id("persona-trend-incomplete")
    if all(p["complete"] for p in trend):
        expect(note).to_have_count(0)
    else:
        expect(note).to_contain_text("未完整周期")
    expect(page.get_by_test_id("persona-cloud")).to_have_count(2)
    expect(page.get_by_test_id("persona-cloud").first.locator("canvas")).to_have_count(1)
    shot(page, "analytics-persona")
    shot(page, "analytics-persona-full", full_page=True)

    # another dimension: the tag group 年龄段 carries the same signal
    groups = [d for d in mgr1_api.get("/analytics/dimensions") if d["kind"] == "tag_group"]
    age_group = next(d for d in groups if d["label"] == "年龄段")
    expected = mgr1_api.get("/analytics/persona", dimension=age_group["key"], **last_year())
    # tag groups are marked as such: the demo's field and tag group are both called 年龄段
    pick_dropdown(
        page, page.get_by_test_id("persona-dimension"), 0, f"{age_group['label']}（标签）"
    )
    expect(buckets).to_have_count(len(expected["buckets"]))
    expect(page.get_by_test_id("persona-flag")).to_have_count(
        len([b for b in expected["buckets"] if b["flag"]])
    )
    # tapping a bucket draws its trend
    buckets.nth(0).click()
    expect(buckets.nth(0)).to_have_class(re.compile(r"\bpicked\b"))


@pytest.mark.e2e
def test_segments_table_by_one_and_two_dimensions(
    page: Any, login: Any, shot: Any, mgr1_api: Any
) -> None:
    expected = mgr1_api.get("/analytics/segments", dimensions="industry", **last_year())
    open_view(page, login, "/analytics/segments", "segments-view")
    rows = page.get_by_test_id("segments-row")
    expect(rows).to_have_count(len(expected["rows"]))
    top = expected["rows"][0]
    expect(rows.first).to_contain_text(top["values"]["industry"] or "（未填写）")
    expect(rows.first).to_contain_text(str(top["count"]))
    expect(page.get_by_test_id("segments-total")).to_contain_text(str(expected["total"]))

    two = mgr1_api.get("/analytics/segments", dimensions="industry,level", **last_year())
    pick_dropdown(page, page.get_by_test_id("segments-pickers"), 1, "客户级别")
    expect(rows).to_have_count(len(two["rows"]))
    expect(page.get_by_test_id("segments-table").locator("thead th")).to_have_count(8)
    shot(page, "analytics-segments")


@pytest.mark.e2e
def test_rfm_grid_segments_and_customers(page: Any, login: Any, shot: Any, mgr1_api: Any) -> None:
    expected = mgr1_api.get("/analytics/rfm", limit=1, **last_year())
    open_view(page, login, "/analytics/rfm", "rfm-view")
    expect(page.get_by_test_id("rfm-cell")).to_have_count(25)
    segments = page.get_by_test_id("rfm-segment")
    expect(segments).to_have_count(len(expected["segments"]))
    champions = page.locator("[data-testid=rfm-segment][data-segment=champions]")
    expect(champions).to_contain_text("重要价值客户")
    shot(page, "analytics-rfm")

    # a segment lists its customers, highest spend first
    busiest = max(expected["segments"], key=lambda s: s["count"])
    listed = mgr1_api.get("/analytics/rfm", segment=busiest["segment"], limit=20, **last_year())
    page.locator(f"[data-testid=rfm-segment][data-segment={busiest['segment']}]").click()
    expect(page.get_by_test_id("rfm-list-title")).to_contain_text(str(busiest["count"]))
    customers = page.get_by_test_id("rfm-customer")
    expect(customers).to_have_count(len(listed["items"]))
    expect(customers.first).to_contain_text(listed["items"][0]["name"])
    if listed["total"] > 20:
        page.get_by_test_id("rfm-more").click()
        expect(customers).to_have_count(min(40, listed["total"]))
    shot(page, "analytics-rfm-segment", full_page=True)
    customers.first.click()
    page.wait_for_url(re.compile(rf"/customers/{listed['items'][0]['customer_id']}$"))
    expect(page.get_by_test_id("customer-name")).to_have_text(listed["items"][0]["name"])


@pytest.mark.e2e
def test_pyramid_tiers(page: Any, login: Any, shot: Any, mgr1_api: Any) -> None:
    expected = mgr1_api.get("/analytics/pyramid", **last_year())
    open_view(page, login, "/analytics/pyramid", "pyramid-view")
    tiers = page.get_by_test_id("pyramid-tier")
    expect(tiers).to_have_count(4)
    expect_counts(page, "pyramid-tier", "tier", expected["tiers"])
    expect(page.get_by_test_id("pyramid-chart").locator("canvas")).to_have_count(1)
    expect(page.get_by_test_id("pyramid-summary")).to_contain_text(
        str(expected["customers_with_spend"])
    )
    shot(page, "analytics-pyramid")


@pytest.mark.e2e
def test_value_matrix_scatter_and_quadrants(
    page: Any, login: Any, shot: Any, mgr1_api: Any
) -> None:
    expected = mgr1_api.get("/analytics/value-matrix", limit=500, **last_year())
    open_view(page, login, "/analytics/value-matrix", "value-matrix-view")
    quadrants = page.get_by_test_id("value-matrix-quadrant")
    expect(quadrants).to_have_count(4)
    expect_counts(page, "value-matrix-quadrant", "quadrant", expected["quadrants"])
    expect(page.get_by_test_id("value-matrix-chart").locator("canvas")).to_have_count(1)
    expect(page.get_by_test_id("value-matrix-summary")).to_contain_text(str(expected["customers"]))
    shot(page, "analytics-value-matrix")


@pytest.mark.e2e
def test_retention_heat_map_repeat_rate_and_churn(
    page: Any, login: Any, shot: Any, mgr1_api: Any
) -> None:
    expected = mgr1_api.get("/analytics/retention", months=12, limit=20)
    open_view(page, login, "/analytics/retention", "retention-view")
    cohorts = page.get_by_test_id("retention-cohort")
    assert expected["cohorts"], "the demo orders should make at least one cohort"
    expect(cohorts).to_have_count(len(expected["cohorts"]))
    expect(cohorts.first).to_contain_text(expected["cohorts"][0]["cohort"])
    expect(cohorts.first.locator("td.pct").first).to_have_text("100")
    expect(page.get_by_test_id("retention-repeat")).to_contain_text(
        str(expected["repeat_customers"])
    )
    expect(page.get_by_test_id("churn-row")).to_have_count(len(expected["churn_risk"]))
    shot(page, "analytics-retention")
    shot(page, "analytics-retention-full", full_page=True)


@pytest.mark.e2e
def test_basket_rules(page: Any, login: Any, shot: Any, mgr1_api: Any) -> None:
    expected = mgr1_api.get("/analytics/basket", limit=100, **last_year())
    assert expected["rules"], "the demo orders should make at least one rule"
    open_view(page, login, "/analytics/basket", "basket-view")
    rules = page.get_by_test_id("basket-rule")
    expect(rules).to_have_count(len(expected["rules"]))
    best = expected["rules"][0]
    for product in best["antecedent"] + best["consequent"]:
        expect(rules.first).to_contain_text(product["name"])
    expect(rules.first).to_contain_text("置信度")
    expect(page.get_by_test_id("basket-summary")).to_contain_text(str(expected["transactions"]))
    shot(page, "analytics-basket")


@pytest.mark.e2e
def test_lead_scores_and_products(page: Any, login: Any, shot: Any, mgr1_api: Any) -> None:
    scores = mgr1_api.get("/analytics/lead-scores", limit=20)
    open_view(page, login, "/analytics/lead-scores", "lead-scores-view")
    rows = page.get_by_test_id("lead-score")
    expect(rows).to_have_count(len(scores["items"]))
    expect(rows.first).to_contain_text(scores["items"][0]["name"])
    shot(page, "analytics-lead-scores")

    products = mgr1_api.get("/analytics/products", by="category", **last_year())
    page.goto("/analytics/products")
    expect(page.get_by_test_id("products-row").first).to_be_visible()
    page.get_by_test_id("products-by").get_by_text("按品类").click()
    expect(page.get_by_test_id("products-row")).to_have_count(len(products["rows"]))
    expect(page.get_by_test_id("products-row").first).to_contain_text(products["rows"][0]["label"])
    shot(page, "analytics-products")


@pytest.mark.e2e
def test_customer_detail_recommends_products(
    page: Any, login: Any, shot: Any, mgr1_api: Any
) -> None:
    buyers = mgr1_api.get("/analytics/rfm", limit=100, **last_year())["items"]
    recommended = None
    for buyer in buyers:
        recs = mgr1_api.get(f"/customers/{buyer['customer_id']}/recommendations")
        if recs:
            recommended = (buyer, recs)
            break
    assert recommended, "some demo buyer should get a recommendation"
    buyer, recs = recommended
    login(page, "mgr1", landing="today")
    page.goto(f"/customers/{buyer['customer_id']}")
    expect(page.get_by_test_id("customer-name")).to_have_text(buyer["name"])
    section = page.get_by_test_id("customer-recommendations")
    expect(section).to_be_visible()
    expect(page.get_by_test_id("customer-recommendation")).to_have_count(len(recs))
    expect(section).to_contain_text(recs[0]["product"]["name"])
    section.scroll_into_view_if_needed()
    shot(page, "analytics-recommendations")

    # a customer with nothing to recommend shows no section at all
    lead = mgr1_api.get("/analytics/lead-scores", limit=1)["items"][0]
    assert mgr1_api.get(f"/customers/{lead['customer_id']}/recommendations") == []
    page.goto(f"/customers/{lead['customer_id']}")
    expect(page.get_by_test_id("customer-name")).to_have_text(lead["name"])
    expect(page.get_by_test_id("customer-tags")).to_be_visible()
    expect(page.get_by_test_id("customer-recommendations")).to_have_count(0)
