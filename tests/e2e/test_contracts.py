"""Contracts on a phone-sized Chromium (SPEC E3): submit (rep1) → approve (rep1's manager) →
sign (rep1), reject with a comment, instalments and payments, Today's approvals linking to the
contract."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

PASSWORD = "demo1234"


def api_client(base_url: str, username: str) -> httpx.Client:
    client = httpx.Client(base_url=f"{base_url}/api/v1", timeout=30)
    res = client.post("/auth/token", data={"username": username, "password": PASSWORD})
    res.raise_for_status()
    client.headers["Authorization"] = f"Bearer {res.json()['access_token']}"
    return client


def create_contract(rep1_api: Any, title: str, amount: str = "20000.00") -> Any:
    customer = rep1_api.create_customer()
    res = rep1_api.client.post(
        "/contracts",
        json={"customer_id": customer["id"], "title": title, "amount": amount},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert res.status_code in (200, 201), res.text
    return res.json()


def approver_for(app_url: str, contract_id: int) -> str:
    """rep1's department manager when the server lets them decide, else the admin."""
    for name in ("mgr1", "admin"):
        client = api_client(app_url, name)
        try:
            res = client.get(f"/contracts/{contract_id}")
        finally:
            client.close()
        if res.status_code == 200 and "approve" in res.json()["allowed_actions"]:
            return name
    pytest.fail("nobody may approve the contract")


def switch_user(page: Any, login: Any, username: str) -> None:
    page.evaluate("localStorage.clear()")
    login(page, username, landing="today")


def act(page: Any, action: str) -> None:
    page.get_by_test_id(f"contract-action-{action}").click()
    page.locator(".van-dialog__confirm").click()


@pytest.mark.e2e
def test_submit_approve_sign_then_instalment_and_payment(
    page: Any, login: Any, shot: Any, rep1_api: Any, app_url: str
) -> None:
    title = f"年度服务合同{uuid.uuid4().hex[:4]}"
    contract = create_contract(rep1_api, title)
    cid = contract["id"]
    assert contract["status"] == "draft"

    # rep1 submits it for approval
    login(page, "rep1", landing="today")
    page.goto(f"/contracts/{cid}")
    expect(page.get_by_test_id("contract-title")).to_have_text(title)
    expect(page.get_by_test_id("contract-status")).to_have_attribute("data-status", "draft")
    actions = page.get_by_test_id("contract-actions").locator("button")
    expect(actions).to_have_count(len(contract["allowed_actions"]))
    act(page, "submit")
    expect(page.get_by_test_id("contract-status")).to_have_attribute(
        "data-status", "pending_approval"
    )
    # the owner cannot approve their own contract: no such button
    expect(page.get_by_test_id("contract-action-approve")).to_have_count(0)

    # the approver finds it under Today's approvals and approves it
    approver = approver_for(app_url, cid)
    switch_user(page, login, approver)
    row = page.locator(f"[data-testid=today-approvals-row][data-link='/contracts/{cid}']")
    expect(row).to_be_visible()
    row.click()
    page.wait_for_url(f"**/contracts/{cid}")
    expect(page.get_by_test_id("contract-action-reject")).to_be_visible()
    shot(page, "contract-approval")
    act(page, "approve")
    expect(page.get_by_test_id("contract-status")).to_have_attribute("data-status", "approved")

    # rep1 signs it
    switch_user(page, login, "rep1")
    page.goto(f"/contracts/{cid}")
    act(page, "sign")
    expect(page.get_by_test_id("contract-status")).to_have_attribute("data-status", "signed")

    # an instalment, then a payment against it
    page.get_by_test_id("plan-add").click()
    page.get_by_test_id("plan-amount").locator("input").fill("8000.00")
    page.get_by_test_id("plan-save").click()
    plan = page.get_by_test_id("contract-plan")
    expect(plan).to_have_count(1)
    expect(plan).to_contain_text("8,000.00")
    plan.click()
    expect(page.get_by_test_id("payment-amount").locator("input")).to_have_value("8000.00")
    page.get_by_test_id("payment-amount").locator("input").fill("3000")
    page.get_by_test_id("payment-save").click()
    expect(page.get_by_test_id("contract-payment")).to_have_count(1)
    expect(plan).to_have_attribute("data-status", "partly_paid")
    expect(page.get_by_test_id("contract-paid")).to_contain_text("3,000.00")
    shot(page, "contract-signed", full_page=True)

    # the list, filtered by status
    page.goto("/contracts?status=signed")
    expect(page.locator(f"[data-testid=contract-row][data-id='{cid}']")).to_be_visible()
    shot(page, "contracts")


@pytest.mark.e2e
def test_reject_asks_for_a_comment(page: Any, login: Any, rep1_api: Any, app_url: str) -> None:
    contract = create_contract(rep1_api, f"驳回测试{uuid.uuid4().hex[:4]}")
    cid = contract["id"]
    res = rep1_api.client.post(
        f"/contracts/{cid}/submit",
        json={},
        headers={"If-Match": rep1_api.client.get(f"/contracts/{cid}").headers["ETag"]},
    )
    assert res.status_code == 200, res.text
    approver = approver_for(app_url, cid)
    login(page, approver, landing="today")
    page.goto(f"/contracts/{cid}")
    page.get_by_test_id("contract-action-reject").click()
    page.get_by_test_id("comment-confirm").click()
    expect(page.get_by_test_id("comment-popup")).to_contain_text(re.compile("驳回理由"))
    expect(page.get_by_test_id("contract-status")).to_have_attribute(
        "data-status", "pending_approval"
    )
    page.get_by_test_id("contract-comment").locator("textarea").fill("价格需要重新核算")
    page.get_by_test_id("comment-confirm").click()
    expect(page.get_by_test_id("contract-status")).to_have_attribute("data-status", "rejected")
