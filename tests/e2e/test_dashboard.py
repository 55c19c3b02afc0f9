"""The manager dashboard on a phone-sized Chromium (SPEC F1): brief cards for the period, the
six-month trend chart and the ranking, reached from the Me workbench."""

from __future__ import annotations

import datetime as dt
import re
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


@pytest.fixture(scope="module")
def mgr1_api(app_url: str) -> Iterator[Api]:
    api = Api(app_url, "mgr1")
    try:
        yield api
    finally:
        api.client.close()


@pytest.mark.e2e
def test_manager_dashboard_shows_cards_trend_and_ranking(
    page: Any, login: Any, shot: Any, mgr1_api: Api
) -> None:
    me = mgr1_api.get("/me")
    res = mgr1_api.client.put(
        "/targets",
        json={
            "user_id": me["id"],
            "month": dt.date.today().strftime("%Y-%m"),
            "metric": "new_customers",
            "target": 50,
        },
    )
    assert res.status_code in (200, 201), res.text
    brief = mgr1_api.get("/dashboard/brief", period="month")
    login(page, "mgr1", landing="today")
    page.get_by_test_id("tab-me").click()
    page.get_by_test_id("workbench-dashboard").click()
    page.wait_for_url("**/dashboard")
    expect(page.locator(".van-nav-bar__title")).to_have_text("数据看板")

    cards = page.get_by_test_id("brief-card")
    expect(cards).to_have_count(len(brief["metrics"]))
    new_customers = page.locator("[data-testid=brief-card][data-metric=new_customers]")
    expect(new_customers).to_contain_text("新增客户")
    value = new_customers.get_by_test_id("brief-value")
    expect(value).to_have_text(re.compile(r"^\d+$"))
    assert int(value.inner_text()) == brief["metrics"]["new_customers"]["value"]
    expect(page.locator("[data-testid=brief-card][data-metric=won_amount]")).to_contain_text("¥")

    expect(page.get_by_test_id("trend-chart").locator("canvas")).to_have_count(1)
    rows = page.get_by_test_id("ranking-row")
    expect(rows.first).to_be_visible()
    expect(rows.first).to_contain_text("1")
    target = page.locator("[data-testid=target-row][data-metric=new_customers]")
    expect(target).to_contain_text("/ 50")
    expect(target.locator(".van-progress")).to_be_visible()
    shot(page, "dashboard")

    # another metric redraws the ranking; another period reloads the cards
    page.get_by_test_id("dashboard-metric").get_by_text("跟进次数").click()
    expect(page.get_by_test_id("ranking")).to_be_visible()
    expect(rows.first).to_be_visible()
    page.get_by_test_id("dashboard-period").get_by_text("本季").click()
    expect(new_customers.get_by_test_id("brief-value")).to_have_text(re.compile(r"^\d+$"))
    shot(page, "dashboard-full", full_page=True)
