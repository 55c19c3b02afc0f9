"""Deals by stage, a deal's stage moves / win / lose, and the funnel screen on a phone-sized
Chromium (SPEC E1, E2). The demo data has no pipeline: the admin creates one first."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

PASSWORD = "demo1234"


class Api:
    """A demo user's API client (the e2e conftest's `Api` is not importable from here)."""

    def __init__(self, base_url: str, username: str) -> None:
        self.client = httpx.Client(base_url=f"{base_url}/api/v1", timeout=30)
        res = self.client.post("/auth/token", data={"username": username, "password": PASSWORD})
        res.raise_for_status()
        self.client.headers["Authorization"] = f"Bearer {res.json()['access_token']}"

    def get(self, path: str, **params: Any) -> Any:
        res = self.client.get(path, params=params)
        res.raise_for_status()
        return res.json()


pytestmark = pytest.mark.e2e

STAGES = [("初步接洽", 10), ("需求确认", 30), ("方案报价", 60), ("商务谈判", 80)]


def post(api: Api, path: str, body: dict[str, Any]) -> Any:
    res = api.client.post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert res.status_code in (200, 201), res.text
    return res.json()


@pytest.fixture(scope="module")
def admin_api(app_url: str) -> Iterator[Api]:
    api = Api(app_url, "admin")
    try:
        yield api
    finally:
        api.client.close()


@pytest.fixture(scope="module")
def pipeline(admin_api: Api) -> Any:
    """The default pipeline (created once; other modules may have made it already)."""
    for p in admin_api.get("/pipelines"):
        if p["is_default"]:
            return p
    return post(
        admin_api,
        "/pipelines",
        {
            "name": "标准销售流程",
            "is_default": True,
            "stages": [{"name": n, "probability": pr} for n, pr in STAGES],
        },
    )


@pytest.fixture(scope="module")
def lost_reason(admin_api: Api) -> Any:
    for r in admin_api.get("/lost-reasons"):
        if r["active"]:
            return r
    return post(admin_api, "/lost-reasons", {"name": "价格太高"})


def stage_named(pipeline: Any, name: str) -> Any:
    return next(s for s in pipeline["stages"] if s["name"] == name)


@pytest.mark.e2e
def test_create_a_deal_and_move_it_between_stages(
    page: Any, login: Any, shot: Any, rep1_api: Api, pipeline: Any
) -> None:
    customer = rep1_api.create_customer()
    login(page, "rep1", landing="today")
    page.goto(f"/customers/{customer['id']}")
    page.get_by_test_id("opportunity-add").click()
    page.wait_for_url("**/opportunities/new")
    title = f"年度采购{uuid.uuid4().hex[:4]}"
    page.get_by_test_id("opportunity-title-input").locator("input").fill(title)
    page.get_by_test_id("opportunity-amount-input").locator("input").fill("12345.50")
    page.get_by_test_id("opportunity-save").click()
    page.wait_for_url(re.compile(r"/opportunities/\d+$"))
    expect(page.get_by_test_id("opportunity-title")).to_have_text(title)
    expect(page.get_by_test_id("opportunity-stage")).to_contain_text("初步接洽")
    expect(page.get_by_test_id("opportunity-header")).to_contain_text("12,345.50")
    opp_id = int(page.url.rsplit("/", 1)[1])

    # move it on to 需求确认 through the stage sheet
    page.get_by_test_id("opportunity-move").click()
    page.locator(".van-action-sheet__item", has_text="需求确认").click()
    expect(page.get_by_test_id("opportunity-stage")).to_contain_text("需求确认")
    expect(page.get_by_test_id("history-row")).to_have_count(2)
    expect(page.get_by_test_id("opportunity-steps").locator(".van-step--process")).to_have_text(
        "需求确认"
    )
    assert rep1_api.get(f"/opportunities/{opp_id}")["stage"]["name"] == "需求确认"
    shot(page, "opportunity-detail")

    # the list: the deal sits under the 需求确认 tab, with its count
    page.goto("/opportunities")
    target = stage_named(pipeline, "需求确认")
    tab = page.get_by_test_id(f"stage-tab-{target['id']}")
    tab.click()
    card = page.locator(f"[data-testid=opportunity-card][data-id='{opp_id}']")
    expect(card).to_be_visible()
    expect(card).to_contain_text(customer["name"])
    expect(tab).to_contain_text(re.compile(r"需求确认\s*\d+"))
    shot(page, "opportunities")


@pytest.mark.e2e
def test_win_and_lose_a_deal(
    page: Any, login: Any, shot: Any, rep1_api: Api, pipeline: Any, lost_reason: Any
) -> None:
    customer = rep1_api.create_customer()
    won = post(
        rep1_api,
        "/opportunities",
        {"customer_id": customer["id"], "title": "赢单测试", "amount": "800"},
    )
    lost = post(
        rep1_api,
        "/opportunities",
        {"customer_id": customer["id"], "title": "输单测试", "amount": "500"},
    )
    login(page, "rep1", landing="today")

    page.goto(f"/opportunities/{won['id']}")
    page.get_by_test_id("opportunity-win").click()
    page.get_by_test_id("win-amount").locator("input").fill("900.00")
    page.get_by_test_id("win-confirm").click()
    expect(page.get_by_test_id("opportunity-status")).to_have_attribute("data-status", "won")
    expect(page.get_by_test_id("opportunity-header")).to_contain_text("900.00")
    expect(page.get_by_test_id("opportunity-move")).to_have_count(0)

    page.goto(f"/opportunities/{lost['id']}")
    page.get_by_test_id("opportunity-lose").click()
    # the reason is required
    page.get_by_test_id("lose-confirm").click()
    expect(page.get_by_test_id("lose-error")).to_be_visible()
    page.get_by_test_id("lose-reason").filter(has_text=lost_reason["name"]).click()
    page.get_by_test_id("lose-confirm").click()
    expect(page.get_by_test_id("opportunity-status")).to_have_attribute("data-status", "lost")
    expect(page.get_by_test_id("opportunity-lost-reason")).to_contain_text(lost_reason["name"])


@pytest.mark.e2e
def test_funnel_screen_draws_the_chart_and_the_stage_table(
    page: Any, login: Any, shot: Any, rep1_api: Api, pipeline: Any
) -> None:
    customer = rep1_api.create_customer()
    post(
        rep1_api,
        "/opportunities",
        {"customer_id": customer["id"], "title": "漏斗测试", "amount": "1000"},
    )
    login(page, "rep1", landing="today")
    page.get_by_test_id("tab-me").click()
    page.get_by_test_id("workbench-funnel").click()
    page.wait_for_url("**/funnel")
    expect(page.get_by_test_id("funnel-chart").locator("canvas")).to_have_count(1)
    expect(page.get_by_test_id("forecast-chart").locator("canvas")).to_have_count(1)
    rows = page.get_by_test_id("funnel-row")
    expect(rows.first).to_be_visible()
    expect(page.locator("[data-testid=funnel-row][data-kind=open]")).to_have_count(len(STAGES))
    expect(page.get_by_test_id("funnel-table")).to_contain_text("初步接洽")
    expect(page.get_by_test_id("funnel-win-rate")).to_be_visible()
    page.get_by_test_id("funnel-measure").get_by_text("按金额").click()
    shot(page, "funnel")
    shot(page, "funnel-full", full_page=True)


@pytest.mark.e2e
def test_a_stale_deal_is_reloaded_instead_of_overwritten(
    page: Any, login: Any, rep1_api: Any, pipeline: Any
) -> None:
    customer = rep1_api.create_customer()
    opp = post(rep1_api, "/opportunities", {"customer_id": customer["id"], "title": "并发测试"})
    login(page, "rep1", landing="today")
    page.goto(f"/opportunities/{opp['id']}")
    expect(page.get_by_test_id("opportunity-stage")).to_contain_text("初步接洽")

    # someone else moves it meanwhile
    etag = rep1_api.client.get(f"/opportunities/{opp['id']}").headers["ETag"]
    res = rep1_api.client.post(
        f"/opportunities/{opp['id']}/stage",
        json={"stage_id": stage_named(pipeline, "商务谈判")["id"]},
        headers={"If-Match": etag},
    )
    assert res.status_code == 200, res.text

    page.get_by_test_id("opportunity-move").click()
    page.locator(".van-action-sheet__item", has_text="方案报价").click()
    expect(page.locator(".van-toast")).to_contain_text("已被他人修改")
    expect(page.get_by_test_id("opportunity-stage")).to_contain_text("商务谈判")
    assert rep1_api.get(f"/opportunities/{opp['id']}")["stage"]["name"] == "商务谈判"


@pytest.mark.e2e
def test_deals_and_funnel_in_english(page: Any, login: Any, pipeline: Any, shot: Any) -> None:
    page.goto("/login")
    page.evaluate("localStorage.setItem('kehu.locale', 'en')")
    login(page, "rep1", landing="today")
    page.get_by_test_id("tab-me").click()
    expect(page.get_by_test_id("workbench")).to_contain_text("Deals")
    page.get_by_test_id("workbench-opportunities").click()
    expect(page.locator(".van-nav-bar__title")).to_have_text("Deals")
    page.get_by_test_id("opportunities-funnel").click()
    expect(page.get_by_test_id("funnel-table")).to_contain_text("Conversion")
    expect(page.get_by_test_id("funnel-chart").locator("canvas")).to_have_count(1)
    shot(page, "funnel-english")
