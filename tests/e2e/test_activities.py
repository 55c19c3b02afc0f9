"""Today, follow-ups with check-in, visit plans, reminders and the inbox on a phone-sized Chromium
(SPEC D1–D5, K2, K3)."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

# a customer in Hangzhou, and a spot about 320 m north of it
CUSTOMER_AT = (30.274085, 120.155070)
HERE = (30.276963, 120.155070)


def metres_between(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (the server uses the haversine formula too)."""
    lat1, lng1, lat2, lng2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    )
    return 2 * 6371008.8 * math.asin(math.sqrt(h))


def is_post(path: str) -> Any:
    return lambda r: r.request.method == "POST" and r.url.split("?")[0].endswith(path)


@pytest.mark.e2e
def test_today_is_the_home_screen_with_four_tabs(page: Any, login: Any, shot: Any) -> None:
    login(page, "rep1", landing="today")
    tabs = page.get_by_test_id("tabbar").locator(".van-tabbar-item")
    expect(tabs).to_have_text(["今日", "客户", "消息", "我的"])
    expect(page.get_by_test_id("today-visits")).to_be_visible()
    expect(page.get_by_test_id("today-stat-overdue")).to_contain_text("逾期")
    # sections later issues fill stay hidden while they are empty
    expect(page.get_by_test_id("today-approvals")).to_have_count(0)
    shot(page, "today")
    shot(page, "today-full", full_page=True)


@pytest.mark.e2e
def test_today_and_inbox_in_english(page: Any, login: Any, shot: Any) -> None:
    page.goto("/login")
    page.evaluate("localStorage.setItem('kehu.locale', 'en')")
    login(page, "rep1", landing="today")
    tabs = page.get_by_test_id("tabbar").locator(".van-tabbar-item")
    expect(tabs).to_have_text(["Today", "Customers", "Inbox", "Me"])
    expect(page.get_by_test_id("today-visits")).to_be_visible()
    expect(page.locator(".section-title").first).to_have_text(re.compile("Today's visits"))
    shot(page, "today-english")
    page.get_by_test_id("tab-inbox").click()
    expect(page.get_by_test_id("mark-all-read")).to_have_text("Mark all read")
    shot(page, "inbox-english")


@pytest.mark.e2e
def test_log_a_visit_follow_up_with_location_check_in(
    context: Any, page: Any, login: Any, rep1_api: Any, shot: Any
) -> None:
    customer = rep1_api.create_customer(lat=CUSTOMER_AT[0], lng=CUSTOMER_AT[1], city="杭州市")
    context.grant_permissions(["geolocation"])
    context.set_geolocation({"latitude": HERE[0], "longitude": HERE[1], "accuracy": 12})
    login(page, "rep1", landing="today")

    page.goto(f"/customers/{customer['id']}")
    expect(page.get_by_test_id("customer-name")).to_have_text(customer["name"])
    page.get_by_test_id("follow-up-add").click()
    page.wait_for_url(f"**/customers/{customer['id']}/follow-ups/new")
    expect(page.get_by_test_id("follow-up-customer")).to_contain_text(customer["name"])

    types = page.get_by_test_id("follow-up-type")
    expect(types.get_by_role("button")).to_have_text(
        ["电话", "拜访", "消息", "邮件", "会议", "其他", "回访"]
    )
    # the check-in is offered for visits only
    expect(page.get_by_test_id("check-in")).to_have_count(0)
    types.get_by_role("button", name="拜访", exact=True).click()
    page.get_by_test_id("follow-up-content").locator("textarea").fill("现场拜访，演示了新版本")
    page.get_by_test_id("check-in").click()
    expect(page.get_by_test_id("check-in-located")).to_contain_text("±12 米")
    shot(page, "follow-up-visit-check-in")

    with page.expect_response(is_post("/api/v1/follow-ups")) as answer:
        page.get_by_test_id("follow-up-save").click()
    assert answer.value.status == 201
    saved = answer.value.json()
    assert saved["type"] == "visit"
    check_in = saved["check_in"]
    assert (check_in["lat"], check_in["lng"], check_in["accuracy_m"]) == (*HERE, 12)
    distance = check_in["distance_m"]
    assert abs(distance - metres_between(HERE, CUSTOMER_AT)) < 2

    expect(page.get_by_test_id("check-in-distance")).to_have_text(f"距客户 {round(distance)} 米")
    shot(page, "follow-up-saved-distance")

    # back on the customer: the follow-ups tab lists it with its distance
    page.get_by_test_id("follow-up-done").click()
    page.wait_for_url(re.compile(rf"/customers/{customer['id']}\?tab=followUps$"))
    item = page.get_by_test_id("follow-up-item").first
    expect(item).to_have_attribute("data-type", "visit")
    expect(item).to_contain_text("现场拜访，演示了新版本")
    expect(item.get_by_test_id("follow-up-check-in")).to_contain_text(f"{round(distance)} 米")
    shot(page, "customer-follow-ups")
    page.get_by_role("tab", name="资料").click()
    expect(page.get_by_test_id("customer-info")).not_to_contain_text("未跟进")


@pytest.mark.e2e
def test_return_visit_asks_for_satisfaction(page: Any, login: Any, rep1_api: Any) -> None:
    customer = rep1_api.create_customer()
    login(page, "rep1", landing="today")
    page.goto(f"/customers/{customer['id']}/follow-ups/new")
    page.get_by_test_id("follow-up-type").get_by_role("button", name="回访").click()
    page.get_by_test_id("follow-up-content").locator("textarea").fill("售后回访")
    rate = page.get_by_test_id("follow-up-satisfaction")
    expect(rate).to_be_visible()
    rate.get_by_role("radio").nth(3).click()  # four stars
    with page.expect_response(is_post("/api/v1/follow-ups")) as answer:
        page.get_by_test_id("follow-up-save").click()
    assert answer.value.status == 201
    assert answer.value.json()["satisfaction"] == 4
    expect(page.get_by_test_id("follow-up-saved")).to_be_visible()
    expect(page.get_by_test_id("check-in-distance")).to_have_count(0)


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat()


@pytest.mark.e2e
def test_visit_reminder_reaches_the_inbox_and_opens_the_visit(
    page: Any, login: Any, rep1_api: Any, kehu: Any, kehu_has: Any, shot: Any
) -> None:
    if not kehu_has("dispatch-reminders"):
        pytest.skip("`kehu dispatch-reminders --now` (one dispatcher pass) is not available yet")
    customer = rep1_api.create_customer()
    login(page, "rep1", landing="today")

    # plan a visit with two reminders (30 min is preselected, 1 h added)
    page.goto(f"/customers/{customer['id']}")
    page.get_by_test_id("visit-plan").click()
    page.wait_for_url(f"**/customers/{customer['id']}/visits/new")
    reminders = page.get_by_test_id("visit-reminders")
    expect(reminders.get_by_role("button")).to_have_text(
        ["开始时", "提前 15 分钟", "提前 30 分钟", "提前 1 小时", "提前 1 天"]
    )
    expect(reminders.get_by_role("button", name="提前 30 分钟")).to_have_attribute(
        "aria-pressed", "true"
    )
    reminders.get_by_role("button", name="提前 1 小时").click()
    page.get_by_test_id("visit-note").locator("textarea").fill("带上样品和报价单")
    shot(page, "visit-plan")
    with page.expect_response(is_post("/api/v1/visits")) as answer:
        page.get_by_test_id("visit-save").click()
    assert answer.value.status == 201
    visit = answer.value.json()
    assert sorted(visit["reminder_offsets_minutes"]) == [30, 60]
    assert len(visit["reminders"]) == 2

    page.wait_for_url(f"**/visits/{visit['id']}")
    expect(page.get_by_test_id("visit-status")).to_have_text("待拜访")
    expect(page.get_by_test_id("visit-customer")).to_contain_text(customer["name"])
    expect(page.get_by_test_id("visit-reminder")).to_have_count(2)
    shot(page, "visit-detail-planned")

    # it is among the visits from today on (reached from Today)
    page.goto("/")
    page.get_by_test_id("today-visits-more").click()
    page.wait_for_url("**/visits")
    row = page.locator(f"[data-testid=visit-row][data-visit-id='{visit['id']}']")
    expect(row).to_contain_text(customer["name"])
    expect(row).to_contain_text("待拜访")
    shot(page, "visit-list")

    # Today, with the unread badge live from the notification stream
    page.go_back()
    page.get_by_test_id("today").wait_for()
    badge = page.get_by_test_id("tab-inbox").locator(".van-badge")
    before = rep1_api.get("/notifications/unread-count")["count"]
    if before:
        expect(badge).to_have_text(str(before) if before <= 99 else "99+")
    page.wait_for_timeout(1500)  # the stream is open (its first event is the unread count)

    # the earlier reminder (1 h before) falls due: one dispatcher pass at that moment
    due = min(dt.datetime.fromisoformat(r["due_at"]) for r in visit["reminders"])
    kehu("dispatch-reminders", "--now", _iso(due + dt.timedelta(seconds=30)))
    after = rep1_api.get("/notifications/unread-count")["count"]
    assert after > before
    # no reload: the badge follows the stream
    expect(badge).to_have_text(str(after) if after <= 99 else "99+", timeout=20_000)
    shot(page, "today-badge")

    page.get_by_test_id("tab-inbox").click()
    page.wait_for_url("**/notifications")
    item = (
        page.get_by_test_id("notification-item")
        .filter(has_text=customer["name"])
        .and_(page.locator("[data-kind=visit_reminder]"))
    )
    expect(item).to_have_count(1)
    expect(item).to_have_attribute("data-unread", "true")
    shot(page, "inbox")

    item.click()
    page.wait_for_url(f"**/visits/{visit['id']}")
    expect(page.get_by_test_id("visit-customer")).to_contain_text(customer["name"])
    states = page.get_by_test_id("visit-reminder")
    expect(states.and_(page.locator("[data-state=sent]"))).to_have_count(1)
    expect(states.and_(page.locator("[data-state=pending]"))).to_have_count(1)
    assert rep1_api.get("/notifications/unread-count")["count"] == after - 1

    # back in the inbox it reads as read
    page.go_back()
    page.wait_for_url("**/notifications")
    expect(item).to_have_attribute("data-unread", "false")


@pytest.mark.e2e
def test_complete_and_cancel_a_visit_with_if_match(
    context: Any, page: Any, login: Any, rep1_api: Any, shot: Any
) -> None:
    customer = rep1_api.create_customer(lat=CUSTOMER_AT[0], lng=CUSTOMER_AT[1])
    starts = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=3)

    def plan() -> Any:
        res = rep1_api.client.post(
            "/visits",
            json={"customer_id": customer["id"], "starts_at": _iso(starts)},
        )
        res.raise_for_status()
        return res.json()

    context.grant_permissions(["geolocation"])
    context.set_geolocation({"latitude": HERE[0], "longitude": HERE[1], "accuracy": 8})
    login(page, "rep1", landing="today")

    # complete with a check-in: the visit is logged as a follow-up, with its distance
    visit = plan()
    page.goto(f"/visits/{visit['id']}")
    expect(page.get_by_test_id("visit-status")).to_have_text("待拜访")
    page.get_by_test_id("visit-complete").click()
    popup = page.get_by_test_id("complete-popup")
    popup.get_by_test_id("complete-content").locator("textarea").fill("谈妥了试用")
    popup.get_by_test_id("check-in").click()
    expect(popup.get_by_test_id("check-in-located")).to_be_visible()
    shot(page, "visit-complete")
    with page.expect_response(is_post(f"/visits/{visit['id']}/complete")) as answer:
        popup.get_by_test_id("complete-save").click()
    assert answer.value.request.headers.get("if-match") == f'"{visit["version"]}"'
    expect(page.get_by_test_id("visit-status")).to_have_text("已完成")
    expect(page.get_by_test_id("visit-check-in-distance")).to_contain_text("距客户 3")
    expect(page.get_by_test_id("visit-complete")).to_have_count(0)
    shot(page, "visit-completed")

    # cancel after someone else changed it: the stale write is refused and the page reloads
    visit = plan()
    page.goto(f"/visits/{visit['id']}")
    expect(page.get_by_test_id("visit-status")).to_have_text("待拜访")
    etag = rep1_api.client.get(f"/visits/{visit['id']}").headers["ETag"]
    moved = rep1_api.client.post(
        f"/visits/{visit['id']}/reschedule",
        json={"starts_at": _iso(starts + dt.timedelta(hours=1))},
        headers={"If-Match": etag},
    )
    moved.raise_for_status()
    page.get_by_test_id("visit-cancel").click()
    page.get_by_test_id("cancel-confirm").click()
    expect(page.locator(".van-toast")).to_contain_text("已被他人修改")
    expect(page.get_by_test_id("visit-status")).to_have_text("待拜访")
    page.get_by_test_id("visit-cancel").click()
    page.get_by_test_id("cancel-reason").locator("textarea").fill("客户临时出差")
    page.get_by_test_id("cancel-confirm").click()
    expect(page.get_by_test_id("visit-status")).to_have_text("已取消")
    expect(page.get_by_test_id("visit-cancel")).to_have_count(0)
    # its pending reminder was cancelled with it (the API leaves cancelled reminders out)
    expect(page.get_by_test_id("visit-reminder")).to_have_count(0)
    assert rep1_api.get(f"/visits/{visit['id']}")["reminders"] == []
    shot(page, "visit-cancelled")


@pytest.mark.e2e
def test_inbox_marks_all_read_and_settings_save(
    page: Any, login: Any, rep1_api: Any, shot: Any
) -> None:
    original = rep1_api.get("/notification-settings")
    login(page, "rep1", landing="today")
    page.get_by_test_id("tab-me").click()
    page.get_by_test_id("me-notification-settings").click()
    page.wait_for_url("**/me/notifications")
    expect(page.get_by_test_id("push-kind-visit_reminder")).to_contain_text("拜访提醒")
    page.get_by_test_id("push-kind-digest").locator(".van-switch").click()
    page.get_by_test_id("quiet-switch").click()
    expect(page.get_by_test_id("quiet-start")).to_contain_text("22:00")
    shot(page, "notification-settings")
    with page.expect_response(
        lambda r: r.request.method == "PUT" and "/notification-settings" in r.url
    ) as answer:
        page.get_by_test_id("settings-save").click()
    assert answer.value.status == 200, answer.value.text()
    saved = answer.value.json()
    assert saved["push_kinds"]["digest"] is False
    assert saved["quiet_hours"] == {"start": "22:00", "end": "07:30"}

    page.goto("/notifications")
    expect(page.get_by_test_id("notification-list")).to_be_visible()
    mark_all = page.get_by_test_id("mark-all-read")
    if mark_all.is_enabled():
        mark_all.click()
        expect(page.locator(".van-toast")).to_contain_text("已全部标为已读")
    expect(page.locator("[data-testid=notification-item][data-unread=true]")).to_have_count(0)
    expect(page.get_by_test_id("tab-inbox").locator(".van-badge")).to_have_count(0)

    # leave the settings as they were for the other tests
    restore = {k: original[k] for k in ("push_kinds", "quiet_hours", "digest_hour")}
    rep1_api.client.put("/notification-settings", json=restore).raise_for_status()


# Headless Chromium has no push service to subscribe with: the page's PushManager is replaced by one
# that hands out a well-formed subscription (the server checks the endpoint and the key sizes).
FAKE_PUSH_MANAGER = """
(() => {
  const b64url = (bytes) =>
    btoa(String.fromCharCode(...bytes)).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '')
  const p256dh = new Uint8Array(65)
  p256dh[0] = 4
  crypto.getRandomValues(p256dh.subarray(1))
  const auth = crypto.getRandomValues(new Uint8Array(16))
  let current = null
  window.__subscribeCalls = []
  PushManager.prototype.getSubscription = async function () { return current }
  PushManager.prototype.subscribe = async function (options) {
    const key = new Uint8Array(options.applicationServerKey)
    window.__subscribeCalls.push({ userVisibleOnly: options.userVisibleOnly, keyBytes: key.length })
    const endpoint = 'https://push.example.test/send/' + Math.random().toString(36).slice(2)
    current = {
      endpoint,
      options: { applicationServerKey: key.buffer, userVisibleOnly: true },
      toJSON: () => ({ endpoint, keys: { p256dh: b64url(p256dh), auth: b64url(auth) } }),
      unsubscribe: async () => { current = null; return true },
    }
    return current
  }
})()
"""


@pytest.mark.e2e
def test_enable_push_on_this_device_and_show_a_push(
    context: Any, page: Any, login: Any, app_url: str, shot: Any
) -> None:
    context.grant_permissions(["notifications"])
    context.add_init_script(FAKE_PUSH_MANAGER)
    cdp = context.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda event: registrations.extend(event["registrations"]),
    )
    cdp.send("ServiceWorker.enable")
    login(page, "rep2", landing="today")

    page.goto("/me/notifications")
    switch = page.get_by_test_id("push-switch")
    expect(switch).not_to_have_class(re.compile(r"van-switch--on"))
    with page.expect_response(is_post("/api/v1/push/subscriptions")) as answer:
        switch.click()
    assert answer.value.status in (200, 201), answer.value.text()
    endpoint = answer.value.json()["endpoint"]
    assert endpoint.startswith("https://push.example.test/send/")
    calls = page.evaluate("window.__subscribeCalls")
    assert calls == [{"userVisibleOnly": True, "keyBytes": 65}]  # the server's VAPID key
    expect(switch).to_have_class(re.compile(r"van-switch--on"))
    shot(page, "notification-settings-push-on")

    # the service worker (scope /) shows a push payload as a notification tagged by its id
    page.wait_for_function("navigator.serviceWorker.ready.then((r) => !!r.active)")
    scope = f"{app_url}/"
    deadline = 50
    while not any(r["scopeURL"] == scope for r in registrations) and deadline:
        page.wait_for_timeout(100)
        deadline -= 1
    registration = next(r for r in registrations if r["scopeURL"] == scope)
    payload = {
        "notification_id": 987654,
        "kind": "visit_reminder",
        "title": "拜访提醒：测试客户",
        "body": "30 分钟后拜访",
        "link": "/visits/1",
    }
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {
            "origin": app_url,
            "registrationId": registration["registrationId"],
            "data": json.dumps(payload, ensure_ascii=False),
        },
    )
    shown = None
    for _ in range(50):
        shown = page.evaluate(
            """async () => {
                const reg = await navigator.serviceWorker.ready
                const [n] = await reg.getNotifications({ tag: '987654' })
                return n ? { title: n.title, body: n.body, data: n.data } : null
            }"""
        )
        if shown:
            break
        page.wait_for_timeout(100)
    assert shown == {
        "title": payload["title"],
        "body": payload["body"],
        "data": {"link": "/visits/1", "notification_id": 987654, "kind": "visit_reminder"},
    }

    # switching it off unsubscribes and tells the server to forget the endpoint
    with page.expect_response(
        lambda r: r.request.method == "DELETE" and "/api/v1/push/subscriptions" in r.url
    ) as answer:
        switch.click()
    assert answer.value.status == 204
    assert f"endpoint={quote(endpoint, safe='')}" in answer.value.url
    expect(switch).not_to_have_class(re.compile(r"van-switch--on"))


@pytest.mark.e2e
def test_unread_badge_falls_back_to_polling_when_the_stream_fails(page: Any, login: Any) -> None:
    attempts: list[float] = []
    polls: list[float] = []

    def refuse(route: Any) -> None:
        attempts.append(time.monotonic())
        route.abort()

    page.route(re.compile(r"/api/v1/notifications/stream"), refuse)

    def count_polls(request: Any) -> None:
        if "/notifications/unread-count" in request.url:
            polls.append(time.monotonic())

    page.on("request", count_polls)
    login(page, "rep1", landing="today")
    for _ in range(100):
        if len(attempts) >= 3 and polls and polls[-1] > attempts[2]:
            break
        page.wait_for_timeout(100)
    assert len(attempts) >= 3, "the stream is retried"
    first_gap, second_gap = attempts[1] - attempts[0], attempts[2] - attempts[1]
    assert first_gap >= 0.4 and second_gap >= first_gap, (first_gap, second_gap)  # backing off
    assert polls and polls[-1] > attempts[2], "after the third failure the count is polled"
