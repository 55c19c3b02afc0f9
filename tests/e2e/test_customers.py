"""The SPA's main customer flows on a phone-sized Chromium (SPEC K1, K2, B1–B5)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def rows(page: Any) -> Any:
    return page.get_by_test_id("customer-row")


def row_names(page: Any) -> list[str]:
    return [n.strip() for n in page.get_by_test_id("customer-row-name").all_inner_texts()]


@pytest.mark.e2e
def test_failed_login_shows_a_neutral_localized_message(page: Any, shot: Any) -> None:
    page.goto("/customers")
    page.wait_for_url(re.compile(r"/login\?redirect="))
    error = page.get_by_test_id("login-error")
    # a wrong password and an unknown account read the same (nothing says whether it exists)
    for username in ("rep2", f"nobody-{uuid.uuid4().hex[:6]}"):
        page.get_by_test_id("login-username").locator("input").fill(username)
        page.get_by_test_id("login-password").locator("input").fill("not-the-password")
        page.get_by_test_id("login-submit").click()
        expect(error).to_have_text("用户名或密码错误")
    shot(page, "login-failed")
    # the message follows the language switch on the same screen
    page.get_by_test_id("lang-switch").click()
    page.locator(".van-action-sheet__item", has_text="English").click()
    expect(error).to_have_text("Wrong username or password")


@pytest.mark.e2e
def test_throttled_login_says_when_to_retry(page: Any, app_url: str) -> None:
    username = f"throttled-{uuid.uuid4().hex[:6]}"  # throttling counts per account name
    for _ in range(5):
        res = httpx.post(
            f"{app_url}/api/v1/auth/token", data={"username": username, "password": "x"}
        )
        assert res.status_code == 401
    page.goto("/login")
    page.get_by_test_id("login-username").locator("input").fill(username)
    page.get_by_test_id("login-password").locator("input").fill("x")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_have_text(
        re.compile(r"登录失败次数过多，请 \d+ 秒后再试")
    )


@pytest.mark.e2e
def test_language_switch_on_login_screen(page: Any, shot: Any) -> None:
    page.goto("/login")
    expect(page.get_by_test_id("login-submit")).to_contain_text("登录")
    page.get_by_test_id("lang-switch").click()
    page.locator(".van-action-sheet__item", has_text="English").click()
    expect(page.get_by_test_id("login-submit")).to_contain_text("Sign in")
    shot(page, "login-english")
    page.get_by_test_id("lang-switch").click()
    page.locator(".van-action-sheet__item", has_text="简体中文").click()
    expect(page.get_by_test_id("login-submit")).to_contain_text("登录")


@pytest.mark.e2e
def test_list_shows_rows_and_loads_more_on_scroll(rep1_page: Any, shot: Any) -> None:
    page = rep1_page
    first = rows(page).first
    expect(first.get_by_test_id("customer-row-name")).not_to_be_empty()
    shot(page, "customer-list")
    assert rows(page).count() >= 30
    before = rows(page).count()
    rows(page).last.scroll_into_view_if_needed()
    page.mouse.wheel(0, 5000)
    expect(rows(page)).not_to_have_count(before)
    assert rows(page).count() > before, "infinite scroll fetched the next cursor page"


@pytest.mark.e2e
def test_search_filters_the_list(rep1_page: Any, shot: Any) -> None:
    page = rep1_page
    names = row_names(page)
    # a customer further down (the first rows must disappear for the search to show its effect)
    target = next(n for n in reversed(names) if len(n) >= 5)
    fragment = target[1:-1]
    page.get_by_test_id("customer-search").locator("input").fill(fragment)
    page.wait_for_function(
        """(frag) => {
            const rows = document.querySelectorAll('[data-testid=customer-row-name]')
            const names = [...rows].map((e) => e.textContent)
            return names.length > 0 && names.every((n) => n.includes(frag))
        }""",
        arg=fragment,
    )
    filtered = row_names(page)
    assert target in filtered
    assert len(filtered) < len(names)
    shot(page, "customer-search")


@pytest.mark.e2e
def test_customer_detail_shows_fields_contacts_and_timeline(
    rep1_page: Any, rep1_api: Any, shot: Any
) -> None:
    page = rep1_page
    # a customer of rep1 that has contacts (the demo data gives many customers contacts)
    customer = None
    for item in rep1_api.get("/customers", limit=50)["items"]:
        contacts = rep1_api.get(f"/customers/{item['id']}/contacts")
        contacts = contacts["items"] if isinstance(contacts, dict) else contacts
        if contacts:
            customer, contact_names = item, [c["name"] for c in contacts]
            break
    assert customer is not None, "the demo data has customers with contacts"

    page.goto(f"/customers/{customer['id']}")
    expect(page.get_by_test_id("customer-name")).to_have_text(customer["name"])
    if customer["phones"]:
        expect(page.get_by_test_id("field-phones")).to_contain_text(customer["phones"][0])
    if customer["industry"]:
        expect(page.get_by_test_id("field-industry")).to_contain_text(customer["industry"])
    shot(page, "customer-detail")
    shot(page, "customer-detail-full", full_page=True)

    page.get_by_role("tab", name="联系人").click()
    expect(page.get_by_test_id("contact-row").first).to_be_visible()
    expect(page.get_by_test_id("contacts")).to_contain_text(contact_names[0])
    shot(page, "customer-contacts")

    page.get_by_role("tab", name="动态").click()
    expect(page.get_by_test_id("timeline-event").first).to_be_visible()
    shot(page, "customer-timeline")


@pytest.mark.e2e
def test_add_contact_from_detail(rep1_page: Any, rep1_api: Any) -> None:
    page = rep1_page
    customer = rep1_api.get("/customers", limit=1, sort="-created_at")["items"][0]
    page.goto(f"/customers/{customer['id']}?tab=contacts")
    page.get_by_test_id("contact-add").click()
    name = f"联系人{uuid.uuid4().hex[:4]}"
    page.get_by_test_id("contact-name").locator("input").fill(name)
    page.get_by_test_id("contact-phone-0").locator("input").fill("13700001234")
    page.get_by_test_id("contact-save").click()
    expect(page.get_by_test_id("contacts")).to_contain_text(name)


@pytest.mark.e2e
def test_create_duplicate_with_warning_then_edit_level(
    rep1_page: Any, rep1_api: Any, shot: Any
) -> None:
    page = rep1_page
    existing = next(c for c in rep1_api.get("/customers", limit=50)["items"] if c["phones"])
    phone = existing["phones"][0]
    name = f"端到端测试{uuid.uuid4().hex[:6]}有限公司"

    posts: list[Any] = []
    page.on(
        "request",
        lambda r: posts.append(r) if r.method == "POST" and "/api/v1/customers" in r.url else None,
    )
    page.get_by_test_id("customer-create").click()
    page.wait_for_url("**/customers/new")
    page.get_by_test_id("field-name").locator("input").fill(name)
    page.get_by_test_id("field-phone-0").locator("input").fill(phone)
    # the debounced check warns while typing
    expect(page.get_by_test_id("duplicate-notice")).to_be_visible()
    shot(page, "customer-create-duplicate-notice")

    page.get_by_test_id("customer-save").click()
    dialog = page.locator(".van-dialog:visible")
    expect(dialog).to_contain_text(existing["name"])
    expect(dialog.get_by_test_id("duplicate-item").first).to_be_visible()
    shot(page, "customer-duplicate-dialog")

    dialog.locator(".van-dialog__confirm").click()  # create anyway
    page.wait_for_url(re.compile(r"/customers/\d+$"))
    expect(page.get_by_test_id("customer-name")).to_have_text(name)
    expect(page.get_by_test_id("field-phones")).to_contain_text(phone)
    new_id = int(page.url.rstrip("/").split("/")[-1])
    assert new_id != existing["id"]
    # one POST per attempt (the duplicate check ran first, so only "create anyway" was posted),
    # each with its own Idempotency-Key
    keys = [r.headers.get("idempotency-key") for r in posts]
    assert keys and all(keys) and len(set(keys)) == len(keys), keys

    # edit: give it level A
    page.get_by_test_id("customer-edit").click()
    page.wait_for_url(f"**/customers/{new_id}/edit")
    expect(page.get_by_test_id("field-name").locator("input")).to_have_value(name)
    page.get_by_test_id("field-level").get_by_role("radio", name="A").click()
    shot(page, "customer-edit")
    page.get_by_test_id("customer-save").click()
    page.wait_for_url(re.compile(rf"/customers/{new_id}(\?.*)?$"))
    expect(page.get_by_test_id("customer-level")).to_contain_text("A")
    expect(page.get_by_test_id("field-level")).to_contain_text("A 级")

    page.get_by_role("tab", name="动态").click()
    change = page.get_by_test_id("timeline-change").filter(has_text="等级").first
    expect(change).to_be_visible()
    expect(change).to_contain_text("A 级")
    shot(page, "customer-timeline-after-edit")


@pytest.mark.e2e
def test_near_me_lists_customers_by_distance(rep1_page: Any, rep1_api: Any, shot: Any) -> None:
    page = rep1_page
    located = next(
        (c for c in rep1_api.get("/customers", limit=200)["items"] if c["lat"] is not None), None
    )
    if located is None:
        pytest.skip("no demo customer of rep1 has a location")
    page.context.grant_permissions(["geolocation"])
    page.context.set_geolocation({"latitude": located["lat"], "longitude": located["lng"]})
    page.get_by_test_id("near-toggle").click()
    expect(page.get_by_test_id("near-banner")).to_be_visible()
    first = rows(page).first
    expect(first.get_by_test_id("customer-row-distance")).to_contain_text("公里")
    names = row_names(page)
    assert located["name"] in names
    shot(page, "customer-near-me")


@pytest.mark.e2e
def test_me_screen_switches_language_and_logs_out(rep1_page: Any, shot: Any) -> None:
    page = rep1_page
    page.get_by_test_id("tab-me").click()
    page.wait_for_url("**/me")
    expect(page.get_by_test_id("me-display-name")).not_to_have_text("…")
    page.get_by_test_id("lang-switch").click()
    page.locator(".van-action-sheet__item", has_text="English").click()
    expect(page.get_by_test_id("logout")).to_contain_text("Sign out")
    expect(page.get_by_test_id("tab-customers")).to_contain_text("Customers")
    shot(page, "me-english")
    page.get_by_test_id("logout").click()
    page.locator(".van-dialog__confirm").click()
    page.wait_for_url("**/login")
    expect(page.get_by_test_id("login-submit")).to_contain_text("Sign in")
    assert page.evaluate("localStorage.getItem('kehu.access_token')") is None


@pytest.mark.e2e
def test_form_renders_every_custom_field_by_type(rep1_page: Any, rep1_api: Any, shot: Any) -> None:
    page = rep1_page
    fields = rep1_api.get("/custom-fields")
    page.get_by_test_id("customer-create").click()
    page.wait_for_url("**/customers/new")
    for field in fields:
        cf = page.get_by_test_id(f"cf-{field['key']}")
        expect(cf).to_be_visible()
        expect(cf).to_contain_text(field["label"])
        if field["type"] == "multi_select":
            expect(cf.locator(".van-checkbox")).to_have_count(len(field["options"]))
    if fields:
        page.get_by_test_id("custom-fields").scroll_into_view_if_needed()
    shot(page, "customer-create-custom-fields")


@pytest.mark.e2e
def test_edit_of_a_record_changed_meanwhile_reloads_it(rep1_page: Any, rep1_api: Any) -> None:
    page = rep1_page
    customer = rep1_api.create_customer(city="杭州市")
    page.goto(f"/customers/{customer['id']}/edit")
    expect(page.get_by_test_id("field-city").locator("input")).to_have_value("杭州市")
    rep1_api.patch_customer(customer["id"], city="宁波市")  # someone else, after our read
    page.get_by_test_id("field-address").locator("input").fill("中山路 1 号")
    page.get_by_test_id("customer-save").click()
    expect(page.locator(".van-toast")).to_contain_text("已被他人修改")
    # the form now shows the other person's change, and stays open
    expect(page.get_by_test_id("field-city").locator("input")).to_have_value("宁波市")
    assert page.url.endswith(f"/customers/{customer['id']}/edit")


@pytest.mark.e2e
def test_delete_is_offered_to_managers_only_and_asks_first(
    page: Any, login: Any, rep1_api: Any
) -> None:
    customer = rep1_api.create_customer()
    # rep1 (sales_rep) has no customer.delete permission: no delete button
    login(page, "rep1")
    page.goto(f"/customers/{customer['id']}")
    expect(page.get_by_test_id("customer-name")).to_have_text(customer["name"])
    expect(page.get_by_test_id("customer-edit")).to_be_visible()
    expect(page.get_by_test_id("customer-delete")).to_have_count(0)
    page.evaluate("localStorage.clear()")

    # mgr1 (manager of rep1's department) may delete, after confirming
    login(page, "mgr1")
    page.goto(f"/customers/{customer['id']}")
    expect(page.get_by_test_id("customer-name")).to_have_text(customer["name"])
    page.get_by_test_id("customer-delete").click()
    page.locator(".van-dialog__cancel").click()
    expect(page.get_by_test_id("customer-name")).to_be_visible()
    page.get_by_test_id("customer-delete").click()
    page.locator(".van-dialog__confirm").click()
    page.wait_for_url(re.compile(r"/customers$"))
    assert rep1_api.client.get(f"/customers/{customer['id']}").status_code == 404
    page.get_by_test_id("customer-search").locator("input").fill(customer["name"])
    expect(page.get_by_test_id("customer-empty")).to_be_visible()


@pytest.mark.e2e
def test_server_field_errors_appear_under_their_fields(rep1_page: Any, shot: Any) -> None:
    page = rep1_page
    page.get_by_test_id("customer-create").click()
    page.wait_for_url("**/customers/new")
    page.get_by_test_id("field-name").locator("input").fill("校验测试客户")
    page.get_by_test_id("field-phone-0").locator("input").fill("12-ab")  # not a phone number
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith("/api/v1/customers")
    ) as answer:
        page.get_by_test_id("customer-save").click()
    assert answer.value.status == 422  # the server's check, not one in the browser
    message = page.get_by_test_id("field-phone-0").locator(".van-field__error-message")
    expect(message).to_have_text("“12-ab”不是有效的电话号码")
    expect(page.locator(".van-toast")).to_contain_text("请修正标记的字段")
    shot(page, "customer-form-server-field-error")
    assert page.url.endswith("/customers/new")


@pytest.mark.e2e
def test_contact_form_shows_server_field_errors_in_the_ui_language(
    rep1_page: Any, rep1_api: Any
) -> None:
    page = rep1_page
    page.evaluate("localStorage.setItem('kehu.locale', 'en')")
    customer = rep1_api.create_customer()
    page.goto(f"/customers/{customer['id']}?tab=contacts")
    page.get_by_test_id("contact-add").click()
    page.get_by_test_id("contact-name").locator("input").fill("Phone Check")
    page.get_by_test_id("contact-phone-0").locator("input").fill("abc")
    page.get_by_test_id("contact-save").click()
    message = page.get_by_test_id("contact-phone-0").locator(".van-field__error-message")
    expect(message).to_have_text("“abc” is not a valid phone number")


PROBLEM = "application/problem+json"


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("answer", "shown"),
    [
        ("abort", "网络连接失败"),
        ({"status": 503, "body": "<html>Service Unavailable</html>"}, "服务暂时不可用"),
        (
            {
                "status": 500,
                "content_type": PROBLEM,
                "body": '{"type": "https://kehu.dev/problems/http-500", "title": "Internal '
                'Server Error", "status": 500, "detail": "an unexpected error occurred"}',
            },
            "服务器出错了",
        ),
        (
            {
                "status": 403,
                "content_type": PROBLEM,
                "body": '{"type": "https://kehu.dev/problems/forbidden", "title": "Not allowed",'
                ' "status": 403, "detail": "requires permission customer.read"}',
            },
            "没有权限执行此操作",
        ),
        (
            {
                "status": 429,
                "content_type": PROBLEM,
                "headers": {"Retry-After": "30"},
                "body": '{"type": "https://kehu.dev/problems/too-many-requests", "title": '
                '"Too many requests", "status": 429}',
            },
            "操作过于频繁，请 30 秒后再试",
        ),
    ],
    ids=["network", "503-html", "500", "forbidden", "too-many-requests"],
)
def test_list_load_failures_are_explained_in_chinese(
    rep1_page: Any, answer: Any, shown: str
) -> None:
    page = rep1_page

    def fail(route: Any) -> None:
        if answer == "abort":
            route.abort()
        else:
            route.fulfill(**answer)

    page.route(re.compile(r"/api/v1/customers\?"), fail)
    page.get_by_test_id("customer-search").locator("input").fill("任意")
    toast = page.locator(".van-toast")
    expect(toast).to_contain_text(shown)
    assert "requires" not in toast.inner_text()
