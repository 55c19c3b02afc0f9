"""Auto-tag rules on a phone-sized Chromium (SPEC H10): the admin reaches them from the Me
workbench and the analytics hub, builds a rule from condition rows (a bad value shows the server's
422 under its row), previews who would get the tag, saves and runs it; the list shows the run.

The rule gives a tag of a group made for the test, so running it changes no tag other tests see.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

CHAMPIONS = {"field": "rfm_segment", "op": "eq", "value": "champions"}


@pytest.fixture
def fresh_tag(api_as: Any) -> dict[str, Any]:
    """A tag in a non-exclusive group of its own (names unique per test run)."""
    admin = api_as("admin")
    suffix = uuid.uuid4().hex[:6]
    group = admin.post("/tag-groups", {"name": f"规则测试{suffix}", "exclusive": False})
    return admin.post("/tags", {"group_id": group["id"], "name": f"高价值{suffix}"})


def condition(page: Any, index: int) -> Any:
    return page.get_by_test_id("condition").nth(index)


@pytest.mark.e2e
def test_admin_creates_previews_and_runs_a_rule(
    page: Any, login: Any, shot: Any, api_as: Any, fresh_tag: dict[str, Any]
) -> None:
    admin = api_as("admin")
    rule = {"tag_id": fresh_tag["id"], "action": "add", "conditions": [CHAMPIONS]}
    expected = admin.post("/tag-rules/preview", rule)
    assert expected["add_count"] > 0, "the demo data should have champions"

    login(page, "admin", landing="today")
    page.get_by_test_id("tab-me").click()
    page.get_by_test_id("workbench-tag-rules").click()
    page.wait_for_url("**/tag-rules")
    expect(page.locator(".van-nav-bar__title")).to_have_text("自动标签规则")
    page.get_by_test_id("tag-rules-new").click()
    page.wait_for_url("**/tag-rules/new")

    name = f"重要价值客户打标{uuid.uuid4().hex[:4]}"
    page.get_by_test_id("tag-rule-name-input").locator("input").fill(name)
    page.get_by_test_id("tag-picker").click()
    page.get_by_test_id("tag-option").filter(has_text=fresh_tag["name"]).click()
    page.get_by_test_id("tag-picker-confirm").click()
    expect(page.get_by_test_id("tag-picker")).to_contain_text(fresh_tag["name"])

    # a number compared with nothing typed: the server's 422 shows under the row's value
    first = condition(page, 0)
    first.get_by_test_id("condition-field").select_option("recency_days")
    first.get_by_test_id("condition-op").select_option("gt")
    page.get_by_test_id("tag-rule-preview-button").click()
    expect(first.locator(".van-field__error-message")).to_have_text("值必须是数字")
    expect(page.get_by_test_id("tag-rule-preview")).to_have_count(0)

    # RFM segment = 重要价值客户
    first.get_by_test_id("condition-field").select_option("rfm_segment")
    expect(first.get_by_test_id("condition-op")).to_have_value("eq")
    first.get_by_test_id("condition-choice-option").filter(has_text="重要价值客户").click()
    page.get_by_test_id("tag-rule-preview-button").click()
    preview = page.get_by_test_id("tag-rule-preview")
    expect(preview).to_be_visible()
    expect(first.locator(".van-field__error-message")).to_have_count(0)
    expect(page.get_by_test_id("preview-add-count")).to_have_text(str(expected["add_count"]))
    expect(page.get_by_test_id("preview-matching")).to_have_text(str(expected["matching"]))
    expect(page.get_by_test_id("preview-add-row")).to_have_count(len(expected["add"]))
    expect(page.get_by_test_id("preview-add-row").first).to_have_text(expected["add"][0]["name"])
    shot(page, "tag-rule-form")
    shot(page, "tag-rule-form-full", full_page=True)

    # saved, it is listed as never run; running it tags the customers the preview named
    page.get_by_test_id("tag-rule-save").click()
    page.wait_for_url(re.compile(r"/tag-rules$"))
    row = page.get_by_test_id("tag-rule").filter(has_text=name)
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("tag-rule-tag")).to_have_text(fresh_tag["name"])
    expect(row.get_by_test_id("tag-rule-last-run")).to_have_text("尚未运行")
    row.get_by_test_id("tag-rule-run").click()
    page.locator(".van-dialog__confirm").click()
    expect(row.get_by_test_id("tag-rule-last-run")).to_contain_text(
        f"打上 {expected['add_count']} · 移除 0"
    )
    shot(page, "tag-rules")

    saved = next(r for r in admin.get("/tag-rules") if r["name"] == name)
    assert saved["conditions"] == [CHAMPIONS]
    assert (saved["last_added"], saved["last_removed"]) == (expected["add_count"], 0)
    champion = admin.get(f"/customers/{expected['add'][0]['id']}")
    assert fresh_tag["id"] in [t["id"] for t in champion["tags"]]

    # the saved rule opens for editing with its condition; a second run changes nothing
    row.click()
    page.wait_for_url(f"**/tag-rules/{saved['id']}")
    expect(page.get_by_test_id("tag-rule-name-input").locator("input")).to_have_value(name)
    expect(condition(page, 0).get_by_test_id("condition-field")).to_have_value("rfm_segment")
    chosen = condition(page, 0).locator("[data-testid=condition-choice-option][aria-pressed=true]")
    expect(chosen).to_have_text("重要价值客户")
    page.get_by_test_id("tag-rule-preview-button").click()
    expect(page.get_by_test_id("preview-add-count")).to_have_text("0")


@pytest.mark.e2e
def test_admin_reaches_tag_rules_from_the_analytics_hub(page: Any, login: Any) -> None:
    login(page, "admin", landing="today")
    page.goto("/analytics")
    entry = page.get_by_test_id("analytics-tag-rules")
    expect(entry).to_contain_text("自动标签规则")
    expect(page.get_by_test_id("analytics-card")).to_have_count(9)
    entry.click()
    page.wait_for_url("**/tag-rules")
    expect(page.get_by_test_id("tag-rules")).to_be_visible()


@pytest.mark.e2e
def test_managers_without_config_manage_see_no_tag_rules(page: Any, login: Any) -> None:
    login(page, "mgr1", landing="today")
    page.get_by_test_id("tab-me").click()
    expect(page.get_by_test_id("workbench-analytics")).to_be_visible()
    expect(page.get_by_test_id("workbench-tag-rules")).to_have_count(0)
    page.get_by_test_id("workbench-analytics").click()
    expect(page.get_by_test_id("analytics-card")).to_have_count(9)
    expect(page.get_by_test_id("analytics-tag-rules")).to_have_count(0)
