"""Pools and the customer lifecycle on a phone-sized Chromium (SPEC C1–C6, B7–B10, K2).

Each test arranges its own customers through the API (unique names), so none depends on what
another test claimed, released or transferred.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

EAST_POOL = "华东公海"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def unique_phone() -> str:
    return f"139{random.randint(0, 99_999_999):08d}"


def post(api: Any, path: str, body: dict[str, Any]) -> Any:
    res = api.client.post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
    res.raise_for_status()
    return res.json()


def pool_id(api: Any, name: str = EAST_POOL) -> int:
    return next(p["id"] for p in api.get("/pools") if p["name"] == name)


def open_pool(page: Any) -> None:
    """From the customer list to the pool browser through the segmented switch."""
    page.get_by_test_id("scope-pool").click()
    page.wait_for_url(re.compile(r"/pools(\?.*)?$"))
    expect(page.get_by_test_id("pool-picker")).to_have_text(EAST_POOL)


def pool_row(page: Any, name: str) -> Any:
    page.get_by_test_id("pool-search").locator("input").fill(name)
    # the searched list, not the first page it replaces (where the customer may show too)
    expect(page.get_by_test_id("pool-row")).to_have_count(1)
    row = page.get_by_test_id("pool-row").filter(has_text=name)
    expect(row).to_have_count(1)
    return row


@pytest.mark.e2e
def test_claim_from_the_pool_reveals_the_hidden_phones(
    page: Any, login: Any, api_as: Any, shot: Any
) -> None:
    # rep2 gives up a customer into 华东公海 (which hides phones until claimed); rep1 claims it
    rep2 = api_as("rep2")
    phone = unique_phone()
    name = f"公海领取{uuid.uuid4().hex[:6]}科技有限公司"
    customer = rep2.create_customer(name=name, phones=[phone], city="上海市", level="B")
    post(
        rep2,
        f"/customers/{customer['id']}/release",
        {"pool_id": pool_id(rep2), "reason": "客户暂无预算"},
    )

    login(page, "rep1")
    open_pool(page)
    expect(page.get_by_test_id("pool-claims-left")).to_contain_text("今日还可领取")
    expect(page.get_by_test_id("pool-hidden-fields")).to_contain_text("电话")
    row = pool_row(page, name)
    expect(row.get_by_test_id("pool-row-phones")).to_have_text("已隐藏")
    expect(row.get_by_test_id("pool-row-reason")).to_have_text("客户暂无预算")
    expect(row).not_to_contain_text(phone)
    shot(page, "pool-browser")

    # its detail withholds the phones too, and offers the claim
    row.click()
    page.wait_for_url(f"**/customers/{customer['id']}")
    expect(page.get_by_test_id("field-phones")).to_have_text(re.compile("已隐藏 · 领取后可见"))
    expect(page.get_by_test_id("customer-claim")).to_be_visible()
    expect(page.get_by_test_id("customer-edit")).to_have_count(0)
    shot(page, "pool-customer-detail")
    page.go_back()

    # claim it from the list: select, claim, read the result
    page.get_by_test_id("pool-select-toggle").click()
    pool_row(page, name).click()
    expect(page.get_by_test_id("pool-selected-count")).to_have_text("已选 1 个")
    page.get_by_test_id("pool-claim").click()
    result = page.get_by_test_id("pool-result")
    expect(result).to_be_visible()
    outcome = result.get_by_test_id("pool-result-row").filter(has_text=name)
    expect(outcome).to_have_attribute("data-outcome", "claimed")
    expect(outcome).to_contain_text("已领取")
    expect(page.get_by_test_id("pool-result-summary")).to_have_text("成功 1 个，未成功 0 个")
    shot(page, "pool-claim-result")
    page.get_by_test_id("pool-result-close").click()
    expect(page.get_by_test_id("pool-row").filter(has_text=name)).to_have_count(0)

    # now one of rep1's customers, phones visible
    page.get_by_test_id("scope-mine").click()
    page.wait_for_url(re.compile(r"/customers$"))
    page.get_by_test_id("customer-search").locator("input").fill(name)
    expect(page.get_by_test_id("customer-row")).to_have_count(1)
    mine = page.get_by_test_id("customer-row").filter(has_text=name)
    expect(mine).to_have_count(1)
    mine.click()
    expect(page.get_by_test_id("field-phones")).to_contain_text(phone)
    expect(page.get_by_test_id("customer-owner")).to_contain_text(
        api_as("rep1").get("/me")["display_name"]
    )
    shot(page, "pool-claimed-customer")


@pytest.mark.e2e
def test_release_a_customer_into_the_pool_with_a_reason(
    page: Any, login: Any, rep1_api: Any, shot: Any
) -> None:
    name = f"释放测试{uuid.uuid4().hex[:6]}贸易公司"
    customer = rep1_api.create_customer(name=name, phones=[unique_phone()], city="杭州市")
    reason = "客户已转向竞品，暂不跟进"

    login(page, "rep1")
    page.goto(f"/customers/{customer['id']}")
    expect(page.get_by_test_id("customer-name")).to_have_text(name)
    page.get_by_test_id("customer-more").click()
    page.locator(".van-action-sheet__item", has_text="释放到公海").click()
    dialog = page.get_by_test_id("release-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_test_id("release-pool").get_by_text(EAST_POOL).click()
    dialog.get_by_test_id("release-dialog-reason").locator("textarea").fill(reason)
    shot(page, "customer-release-dialog")
    dialog.get_by_test_id("release-dialog-confirm").click()

    expect(page.locator(".van-toast")).to_contain_text("已释放到公海")
    expect(page.get_by_test_id("customer-pool")).to_have_text(f"公海 · {EAST_POOL}")
    expect(page.get_by_test_id("field-pool-reason")).to_contain_text(reason)
    # rep1 is now a pool member like any other: the phones are withheld
    expect(page.get_by_test_id("field-phones")).to_contain_text("已隐藏")
    shot(page, "customer-released")

    page.goto("/customers")
    open_pool(page)
    row = pool_row(page, name)
    expect(row.get_by_test_id("pool-row-reason")).to_have_text(reason)
    shot(page, "pool-after-release")


@pytest.mark.e2e
def test_manager_transfers_two_selected_customers(
    page: Any, login: Any, rep1_api: Any, api_as: Any, shot: Any
) -> None:
    prefix = f"转移{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}甲公司", f"{prefix}乙公司"]
    ids = [rep1_api.create_customer(name=n)["id"] for n in names]
    rep2 = api_as("rep2").get("/me")

    login(page, "mgr1")
    page.get_by_test_id("customer-search").locator("input").fill(prefix)
    rows = page.get_by_test_id("customer-row")
    expect(rows).to_have_count(2)  # the searched list (new customers also top the first page)
    expect(rows.filter(has_text=prefix)).to_have_count(2)
    page.get_by_test_id("customer-select-toggle").click()
    for n in names:
        rows.filter(has_text=n).click()
    expect(page.get_by_test_id("customer-selected-count")).to_have_text("已选 2 个")
    shot(page, "customer-multi-select")

    page.get_by_test_id("customer-transfer").click()
    popup = page.get_by_test_id("transfer-popup")
    expect(popup).to_contain_text("转移 2 个客户")
    popup.get_by_test_id("transfer-owner").click()
    page.get_by_test_id("user-option").filter(has_text=rep2["display_name"]).click()
    expect(popup.get_by_test_id("transfer-owner").locator("input")).to_have_value(
        rep2["display_name"]
    )
    popup.get_by_test_id("transfer-access-read").click()
    shot(page, "customer-transfer-dialog")
    popup.get_by_test_id("transfer-confirm").click()

    expect(page.locator(".van-toast")).to_contain_text("已转移 2 个客户")
    for n in names:
        expect(rows.filter(has_text=n)).to_contain_text(rep2["display_name"])
    shot(page, "customer-transferred")
    mgr1 = api_as("mgr1")
    assert [mgr1.get(f"/customers/{i}")["owner"]["id"] for i in ids] == [rep2["id"]] * 2
    # rep1 kept read access as a team member
    members = mgr1.get(f"/customers/{ids[0]}/members")
    assert [(m["user"]["id"], m["access"]) for m in members] == [
        (rep1_api.get("/me")["id"], "read")
    ]


@pytest.mark.e2e
def test_today_lists_customers_going_to_the_pool(
    page: Any, login: Any, rep1_api: Any, shot: Any
) -> None:
    warnings = rep1_api.get("/today")["reclaim_warnings"]
    if not warnings:
        pytest.skip("the demo data gives rep1 no customer about to be reclaimed")
    login(page, "rep1", landing="today")
    section = page.get_by_test_id("today-reclaim")
    expect(section).to_be_visible()
    expect(section.get_by_test_id("today-reclaim-row")).to_have_count(len(warnings))
    first = section.get_by_test_id("today-reclaim-row").first
    expect(first).to_contain_text(warnings[0]["name"])
    expect(first.get_by_test_id("today-reclaim-when")).to_contain_text("进入公海")
    section.scroll_into_view_if_needed()
    shot(page, "today-reclaim-warnings")
    first.click()
    page.wait_for_url(f"**/customers/{warnings[0]['customer_id']}")
    expect(page.get_by_test_id("customer-name")).to_have_text(warnings[0]["name"])


@pytest.mark.e2e
def test_pool_admin_sees_the_stats(page: Any, login: Any, shot: Any) -> None:
    login(page, "mgr1")
    open_pool(page)
    page.get_by_test_id("pool-stats").click()
    page.wait_for_url(re.compile(r"/pools/\d+/stats$"))
    expect(page.get_by_test_id("pool-stats-table")).to_be_visible()
    expect(page.get_by_test_id("pool-stats-in-pool")).to_contain_text("当前在池")
    page.get_by_test_id("pool-stats-preset-option").filter(has_text="近 30 天").click()
    expect(page.get_by_test_id("pool-stats-table")).to_be_visible()
    shot(page, "pool-stats")


@pytest.mark.e2e
def test_freeze_then_restore_from_the_recycle_bin(
    page: Any, login: Any, rep1_api: Any, shot: Any
) -> None:
    name = f"冻结测试{uuid.uuid4().hex[:6]}商行"
    customer = rep1_api.create_customer(name=name)
    login(page, "mgr1")
    page.goto(f"/customers/{customer['id']}")
    expect(page.get_by_test_id("customer-name")).to_have_text(name)
    page.get_by_test_id("customer-more").click()
    page.locator(".van-action-sheet__item", has_text="冻结").click()
    dialog = page.get_by_test_id("freeze-dialog")
    dialog.get_by_test_id("freeze-dialog-confirm").click()
    expect(dialog).to_contain_text("请填写原因")  # the reason is required
    dialog.get_by_test_id("freeze-dialog-reason").locator("textarea").fill("预算冻结到明年")
    dialog.get_by_test_id("freeze-dialog-confirm").click()
    page.wait_for_url(re.compile(r"/customers$"))

    page.get_by_test_id("tab-me").click()
    page.get_by_test_id("me-recycle-bin").click()
    page.wait_for_url("**/recycle-bin")
    page.get_by_test_id("recycle-search").locator("input").fill(name)
    row = page.get_by_test_id("recycle-row").filter(has_text=name)
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("recycle-row-kind")).to_have_text("已冻结")
    expect(row.get_by_test_id("recycle-row-reason")).to_have_text("预算冻结到明年")
    shot(page, "recycle-bin")
    row.get_by_test_id("recycle-restore").click()
    page.locator(".van-dialog__confirm").click()
    expect(page.locator(".van-toast")).to_contain_text("已恢复")
    expect(row).to_have_count(0)
    assert rep1_api.get(f"/customers/{customer['id']}")["name"] == name


@pytest.mark.e2e
def test_lock_and_team_members_on_the_detail(
    page: Any, login: Any, rep1_api: Any, api_as: Any, shot: Any
) -> None:
    name = f"团队测试{uuid.uuid4().hex[:6]}有限公司"
    customer = rep1_api.create_customer(name=name)
    rep2 = api_as("rep2").get("/me")
    login(page, "mgr1")
    page.goto(f"/customers/{customer['id']}")
    expect(page.get_by_test_id("customer-name")).to_have_text(name)

    # lock: a badge, and the action turns into unlock
    page.get_by_test_id("customer-more").click()
    page.locator(".van-action-sheet__item", has_text="锁定").click()
    expect(page.get_by_test_id("customer-locked")).to_have_text("已锁定")
    page.get_by_test_id("customer-more").click()
    expect(page.locator(".van-action-sheet__item", has_text="解锁")).to_be_visible()
    page.locator(".van-action-sheet__cancel").click()

    # team: add rep2 with edit access until a day next year, then remove them
    page.get_by_role("tab", name="团队").click()
    page.get_by_test_id("team-add").click()
    popup = page.get_by_test_id("team-popup")
    popup.get_by_test_id("team-user").click()
    page.get_by_test_id("user-option").filter(has_text=rep2["display_name"]).click()
    popup.get_by_test_id("team-access").get_by_text("可编辑").click()
    popup.get_by_test_id("team-save").click()
    member = page.get_by_test_id("team-member").filter(has_text=rep2["display_name"])
    expect(member).to_contain_text("可编辑")
    expect(member).to_contain_text("长期")
    shot(page, "customer-team")
    assert [m["access"] for m in rep1_api.get(f"/customers/{customer['id']}/members")] == ["write"]
    member.get_by_test_id("team-remove").click()
    page.locator(".van-dialog__confirm").click()
    expect(member).to_have_count(0)
    assert rep1_api.get(f"/customers/{customer['id']}/members") == []


@pytest.mark.e2e
def test_merge_a_duplicate_into_the_customer(
    page: Any, login: Any, rep1_api: Any, shot: Any
) -> None:
    tag = uuid.uuid4().hex[:6]
    kept = rep1_api.create_customer(name=f"合并保留{tag}公司")
    phone = unique_phone()
    other = rep1_api.create_customer(name=f"合并重复{tag}公司", phones=[phone])
    login(page, "mgr1")
    page.goto(f"/customers/{kept['id']}")
    expect(page.get_by_test_id("customer-name")).to_have_text(kept["name"])
    page.get_by_test_id("customer-more").click()
    page.locator(".van-action-sheet__item", has_text="合并重复客户").click()
    popup = page.get_by_test_id("customer-search-popup")
    popup.get_by_test_id("customer-search-popup-input").locator("input").fill(tag)
    choice = popup.get_by_test_id("customer-search-popup-row")
    expect(choice).to_have_count(1)  # the customer itself is not offered
    expect(choice).to_contain_text(other["name"])
    shot(page, "customer-merge-pick")
    choice.click()
    page.locator(".van-dialog__confirm").click()
    expect(page.locator(".van-toast")).to_contain_text("已合并")
    # the empty phones were filled from the duplicate, which is gone
    expect(page.get_by_test_id("field-phones")).to_contain_text(phone)
    assert rep1_api.client.get(f"/customers/{other['id']}").status_code == 404


def shanghai_minute(iso: str) -> str:
    """An ISO instant as the zh-CN screens print it (Asia/Shanghai): 2025/01/08 14:30."""
    return dt.datetime.fromisoformat(iso).astimezone(SHANGHAI).strftime("%Y/%m/%d %H:%M")


def refusals(api: Any, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-customer results of a pool action that took nothing (its 409 problem)."""
    res = api.client.post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert res.status_code == 409, res.text
    return list(res.json()["results"])


@pytest.mark.e2e
def test_rep_adds_any_colleague_to_the_team(
    page: Any, login: Any, rep1_api: Any, api_as: Any, shot: Any
) -> None:
    # rep1 (scope: own) has nobody to transfer to, but may share with anyone active
    name = f"代表团队{uuid.uuid4().hex[:6]}有限公司"
    customer = rep1_api.create_customer(name=name)
    me = rep1_api.get("/me")
    rep6 = api_as("rep6").get("/me")  # 华南销售部: outside rep1's data scope
    login(page, "rep1")
    page.goto(f"/customers/{customer['id']}")
    expect(page.get_by_test_id("customer-name")).to_have_text(name)
    page.get_by_test_id("customer-more").click()
    expect(page.locator(".van-action-sheet__item", has_text="冻结")).to_be_visible()
    expect(page.locator(".van-action-sheet__item", has_text="转移")).to_have_count(0)
    page.locator(".van-action-sheet__cancel").click()

    page.get_by_role("tab", name="团队").click()
    page.get_by_test_id("team-add").click()
    popup = page.get_by_test_id("team-popup")
    popup.get_by_test_id("team-user").click()
    picker = page.get_by_test_id("team-user-popup")
    options = picker.get_by_test_id("user-option")
    # anyone active, with their department; never the owner
    expect(options.filter(has_text=rep6["display_name"])).to_contain_text("华南销售部")
    expect(picker.locator(f"[data-testid=user-option][data-user-id='{me['id']}']")).to_have_count(0)
    picker.locator(".van-search input").fill(rep6["display_name"])
    expect(options).to_have_count(1)
    shot(page, "customer-team-rep-picker")
    options.click()
    popup.get_by_test_id("team-save").click()
    member = page.get_by_test_id("team-member").filter(has_text=rep6["display_name"])
    expect(member).to_contain_text("只读")
    shot(page, "customer-team-rep")
    members = rep1_api.get(f"/customers/{customer['id']}/members")
    assert [(m["user"]["id"], m["access"]) for m in members] == [(rep6["id"], "read")]


@pytest.mark.e2e
def test_claim_back_in_the_cooling_period_says_until_when(
    page: Any, login: Any, api_as: Any, shot: Any
) -> None:
    rep3 = api_as("rep3")
    name = f"冷静期{uuid.uuid4().hex[:6]}科技公司"
    customer = rep3.create_customer(name=name)
    pool = pool_id(rep3)
    post(rep3, f"/customers/{customer['id']}/release", {"pool_id": pool, "reason": "暂缓"})
    [refused] = refusals(rep3, f"/pools/{pool}/claim", {"customer_ids": [customer["id"]]})
    assert refused["reason"] == "cooling_period"

    login(page, "rep3")
    open_pool(page)
    page.get_by_test_id("pool-select-toggle").click()
    pool_row(page, name).click()
    page.get_by_test_id("pool-claim").click()
    outcome = page.get_by_test_id("pool-result-row").filter(has_text=name)
    expect(outcome).to_have_attribute("data-outcome", "refused")
    expect(outcome).to_contain_text(f"冷静期内，{shanghai_minute(refused['until'])} 后可再领取")
    expect(page.get_by_test_id("pool-result-summary")).to_have_text("成功 0 个，未成功 1 个")
    shot(page, "pool-claim-cooling")


@pytest.mark.e2e
def test_claim_over_the_daily_limit_names_the_limit(
    page: Any, login: Any, api_as: Any, shot: Any
) -> None:
    # rep2 gives up enough customers for rep5 to reach 华东公海's daily limit, then one more
    rep2, rep5 = api_as("rep2"), api_as("rep5")
    pool = pool_id(rep2)
    limit = next(p for p in rep5.get("/pools") if p["id"] == pool)["claims_left_today"]
    assert isinstance(limit, int) and limit > 0
    prefix = f"日限{uuid.uuid4().hex[:6]}"
    ids = []
    for i in range(limit + 1):
        customer = rep2.create_customer(name=f"{prefix}第{i}号商行")
        post(rep2, f"/customers/{customer['id']}/release", {"pool_id": pool, "reason": "测试"})
        ids.append(customer["id"])
    taken = post(rep5, f"/pools/{pool}/claim", {"customer_ids": ids[:-1]})
    assert taken["refused"] == 0
    daily = next(p for p in rep5.get("/pools") if p["id"] == pool)["daily_claim_limit"]

    login(page, "rep5")
    open_pool(page)
    expect(page.get_by_test_id("pool-claims-left")).to_contain_text("今日还可领取 0 个")
    page.get_by_test_id("pool-select-toggle").click()
    last = f"{prefix}第{limit}号商行"
    pool_row(page, last).click()
    page.get_by_test_id("pool-claim").click()
    outcome = page.get_by_test_id("pool-result-row").filter(has_text=last)
    expect(outcome).to_have_attribute("data-outcome", "refused")
    expect(outcome).to_contain_text(f"已达今日领取上限（{daily} 个）")
    shot(page, "pool-claim-daily-limit")


@pytest.mark.e2e
def test_assign_offers_people_in_scope_and_names_the_owners_cap(
    page: Any, login: Any, api_as: Any, shot: Any
) -> None:
    rep2, rep4, admin = api_as("rep2"), api_as("rep4"), api_as("admin")
    rep4_me, rep6 = rep4.get("/me"), api_as("rep6").get("/me")
    rep4.create_customer(name=f"名下{uuid.uuid4().hex[:6]}商行")  # rep4 owns at least one
    name = f"分配上限{uuid.uuid4().hex[:6]}有限公司"
    customer = rep2.create_customer(name=name)
    post(rep2, f"/customers/{customer['id']}/release", {"pool_id": pool_id(rep2), "reason": "x"})

    def set_cap(cap: int | None) -> None:
        etag = admin.client.get(f"/users/{rep4_me['id']}").headers["ETag"]
        res = admin.client.patch(
            f"/users/{rep4_me['id']}", json={"max_owned_customers": cap}, headers={"If-Match": etag}
        )
        res.raise_for_status()

    set_cap(1)
    try:
        login(page, "mgr1")
        open_pool(page)
        page.get_by_test_id("pool-select-toggle").click()
        pool_row(page, name).click()
        page.get_by_test_id("pool-assign").click()
        page.get_by_test_id("pool-assignee").click()
        options = page.get_by_test_id("pool-assignee-popup").get_by_test_id("user-option")
        expect(options.filter(has_text=rep4_me["display_name"])).to_have_count(1)
        # 华南销售部 is outside mgr1's data scope (华东销售部 and its 杭州分部)
        expect(options.filter(has_text=rep6["display_name"])).to_have_count(0)
        shot(page, "pool-assign-picker")
        options.filter(has_text=rep4_me["display_name"]).click()
        page.get_by_test_id("pool-assign-confirm").click()
        outcome = page.get_by_test_id("pool-result-row").filter(has_text=name)
        expect(outcome).to_have_attribute("data-outcome", "refused")
        expect(outcome).to_contain_text("名下客户数已达上限（1 个）")
        shot(page, "pool-assign-owned-cap")
    finally:
        set_cap(None)
