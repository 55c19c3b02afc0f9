"""API keys on a phone-sized Chromium (SPEC J1): the admin reaches them from the Me workbench,
creates a key with `customers:read` (an empty name shows the server's 422 under the field), sees the
token once in a dialog and copies it; the key reads the customers over plain HTTP until the admin
revokes it in the list, then it gets 401. A manager without `integration.manage` has no entry.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def customers_with(app_url: str, token: str) -> httpx.Response:
    return httpx.get(
        f"{app_url}/api/v1/customers",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


@pytest.mark.e2e
def test_admin_creates_copies_uses_and_revokes_a_key(
    page: Any, context: Any, login: Any, shot: Any, app_url: str, api_as: Any
) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app_url)
    login(page, "admin", landing="today")
    page.get_by_test_id("tab-me").click()
    page.get_by_test_id("workbench-api-keys").click()
    page.wait_for_url("**/integrations/api-keys")
    expect(page.locator(".van-nav-bar__title")).to_have_text("API 密钥")
    page.get_by_test_id("api-keys-new").click()
    page.wait_for_url("**/integrations/api-keys/new")

    # read only on customers; everything else stays off
    customers = page.locator("[data-testid=api-key-scope-row][data-resource=customers]")
    customers.get_by_test_id("scope-customers-option").filter(has_text="读取").click()
    expect(page.locator("[data-testid$=-option][aria-pressed=true]")).to_have_count(1)
    analytics = page.locator("[data-testid=api-key-scope-row][data-resource=analytics]")
    expect(analytics.get_by_test_id("scope-analytics-option")).to_have_text(["读取"])
    expect(page.get_by_test_id("api-key-acting-user").locator("input")).to_have_value(
        re.compile(r"（我）$")
    )

    # no name: the server's 422 (problem+json) shows under the field, nothing is created
    page.get_by_test_id("api-key-create").click()
    name_field = page.get_by_test_id("api-key-name-input")
    expect(name_field.locator(".van-field__error-message")).to_have_text("请填写名称")
    expect(page.get_by_test_id("api-key-token")).to_have_count(0)

    name = f"ERP 同步{uuid.uuid4().hex[:4]}"
    name_field.locator("input").fill(name)
    # expires when today ends (the picker opens on today, the earliest day it offers)
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    page.get_by_test_id("api-key-expires").click()
    page.locator(".van-picker__confirm").click()
    expect(page.get_by_test_id("api-key-expires").locator("input")).to_have_value(today.isoformat())
    shot(page, "api-key-form")
    shot(page, "api-key-form-full", full_page=True)
    page.get_by_test_id("api-key-create").click()

    # the token, once, with a warning and a copy button
    token_box = page.get_by_test_id("api-key-token")
    expect(token_box).to_be_visible()
    expect(page.get_by_test_id("api-key-token-warning")).to_contain_text("只显示这一次")
    token = token_box.inner_text().strip()
    assert re.fullmatch(r"kehu_[0-9a-f]+_[\w-]+", token), token
    page.get_by_test_id("api-key-copy").click()
    expect(page.locator(".van-toast")).to_contain_text("已复制")
    assert page.evaluate("navigator.clipboard.readText()") == token
    shot(page, "api-key-token")

    # the key reads the customers over plain HTTP
    assert customers_with(app_url, token).status_code == 200

    page.get_by_test_id("api-key-token-done").click()
    page.wait_for_url(re.compile(r"/integrations/api-keys$"))
    expect(page.get_by_test_id("api-key-token")).to_have_count(0)
    row = page.get_by_test_id("api-key").filter(has_text=name)
    expect(row).to_have_count(1)
    prefix = token.split("_")[1]
    expect(row.get_by_test_id("api-key-prefix")).to_have_text(f"kehu_{prefix}_…")
    expect(row.get_by_test_id("api-key-scope")).to_have_text(["客户 · 只读"])
    expect(row.get_by_test_id("api-key-state")).to_have_text("有效")
    expect(row.get_by_test_id("api-key-acting")).to_contain_text("（我）")
    expect(row.get_by_test_id("api-key-last-used")).to_contain_text("127.0.0.1")
    expect(row.get_by_test_id("api-key-validity")).to_contain_text("23:59 到期")
    assert token not in page.content()
    shot(page, "api-keys")
    page.set_viewport_size({"width": 1280, "height": 800})
    shot(page, "api-keys-desktop")
    page.set_viewport_size({"width": 390, "height": 844})

    # revoked in the UI (after a confirmation): dimmed, no revoke button, the key gets 401
    row.get_by_test_id("api-key-revoke").click()
    dialog = page.locator(".van-dialog").filter(has_text=name)
    expect(dialog).to_contain_text("吊销密钥")
    dialog.locator(".van-dialog__confirm").click()
    expect(row.get_by_test_id("api-key-state")).to_have_text("已吊销")
    expect(row).to_have_attribute("data-state", "revoked")
    expect(row).to_have_css("opacity", "0.5")
    expect(row.get_by_test_id("api-key-revoke")).to_have_count(0)
    shot(page, "api-keys-revoked")

    assert customers_with(app_url, token).status_code == 401
    saved = next(k for k in api_as("admin").get("/api-keys") if k["name"] == name)
    assert saved["scopes"] == ["customers:read"]
    end_of_today = dt.datetime.combine(today, dt.time(23, 59, 59), ZoneInfo("Asia/Shanghai"))
    assert dt.datetime.fromisoformat(saved["expires_at"]) == end_of_today
    assert saved["revoked_at"] is not None


@pytest.mark.e2e
def test_managers_without_integration_manage_see_no_api_keys(page: Any, login: Any) -> None:
    login(page, "mgr1", landing="today")
    page.get_by_test_id("tab-me").click()
    expect(page.get_by_test_id("workbench-analytics")).to_be_visible()
    expect(page.get_by_test_id("workbench-api-keys")).to_have_count(0)


@pytest.mark.e2e
def test_admin_creates_a_key_acting_as_a_rep(
    page: Any, login: Any, app_url: str, api_as: Any
) -> None:
    rep = api_as("rep1").get("/me")
    login(page, "admin", landing="today")
    page.goto("/integrations/api-keys/new")  # a deep link
    name = f"对账{uuid.uuid4().hex[:4]}"
    page.get_by_test_id("api-key-name-input").locator("input").fill(name)
    page.get_by_test_id("scope-analytics-option").filter(has_text="读取").click()
    page.get_by_test_id("api-key-acting-user").click()
    page.locator(f"[data-testid=user-option][data-user-id='{rep['id']}']").click()
    expect(page.get_by_test_id("api-key-acting-user").locator("input")).to_have_value(
        rep["display_name"]
    )
    page.get_by_test_id("api-key-create").click()
    token = page.get_by_test_id("api-key-token").inner_text().strip()
    page.get_by_test_id("api-key-token-done").click()
    page.wait_for_url(re.compile(r"/integrations/api-keys$"))

    row = page.get_by_test_id("api-key").filter(has_text=name)
    expect(row.get_by_test_id("api-key-acting")).to_have_text(f"代表 {rep['display_name']}")
    expect(row.get_by_test_id("api-key-scope")).to_have_text(["分析 · 只读"])
    expect(row.get_by_test_id("api-key-last-used")).to_have_text("从未使用")
    # analytics only: the customers are out of its scopes
    assert customers_with(app_url, token).status_code == 403
    saved = next(k for k in api_as("admin").get("/api-keys") if k["name"] == name)
    assert (saved["acting_user_id"], saved["scopes"]) == (rep["id"], ["analytics:read"])
    api_as("admin").post(f"/api-keys/{saved['id']}/revoke", {})
