"""The field rep on a train with one bar of signal (SPEC K3, issue 8): an installable PWA whose app
shell and recent reads work offline, and whose writes made offline wait in an outbox and are sent
once — exactly once — when the network is back. Phone-sized Chromium, `context.set_offline`.

- the manifest, icons and service worker are served from the built SPA with their own content
  types (not the SPA fallback's index.html);
- a rep reads today, a customer and a visit online; offline, a reload still shows the app and that
  customer; a follow-up logged and a visit completed offline show as pending; back online the
  queue drains (the first answer is lost on the way back, so the retry must not write twice), and
  the API holds each exactly once — also after re-sending a queued request with its key by hand;
- an edit made offline meets a change made meanwhile through the API: the rep sees both values and
  chooses; the server ends with what they chose.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

READ_OUTBOX = """async () => {
    const db = await new Promise((resolve, reject) => {
        const open = indexedDB.open('kehu-offline')
        open.onsuccess = () => resolve(open.result)
        open.onerror = () => reject(open.error)
    })
    const all = await new Promise((resolve, reject) => {
        const req = db.transaction('outbox').objectStore('outbox').getAll()
        req.onsuccess = () => resolve(req.result)
        req.onerror = () => reject(req.error)
    })
    db.close()
    // the exact body the outbox sends (JSON.stringify of the stored object)
    return all.map((e) => ({ ...e, bodyJson: JSON.stringify(e.body) }))
}"""


CACHED_READ = """async (path) => {
    try {
        const res = await fetch(path, {
            headers: { Authorization: 'Bearer ' + localStorage.getItem('kehu.access_token') },
        })
        return { ok: res.ok, from: res.headers.get('X-Kehu-Offline') || 'network' }
    } catch (err) {
        return { error: err.name }
    }
}"""


def wait_for_service_worker(page: Any) -> None:
    """The worker is installed (the shell precached) and controls the page."""
    page.wait_for_function(
        "navigator.serviceWorker.ready.then((r) => !!r.active)", polling=200, timeout=30_000
    )
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=30_000)


def follow_ups_of(api: Any, customer_id: int) -> list[dict[str, Any]]:
    return list(api.get(f"/customers/{customer_id}/follow-ups", limit=100)["items"])


@pytest.mark.e2e
def test_manifest_icons_and_service_worker_are_served_as_themselves(app_url: str) -> None:
    with httpx.Client(base_url=app_url, timeout=30) as http:
        manifest = http.get("/manifest.webmanifest")
        assert manifest.status_code == 200
        assert manifest.headers["content-type"].startswith("application/manifest+json")
        data = manifest.json()
        assert data["name"] == "客户 Kehu CRM"
        assert (data["start_url"], data["display"]) == ("/", "standalone")
        assert data["theme_color"].startswith("#")
        sizes = {icon["sizes"] for icon in data["icons"] if icon["type"] == "image/png"}
        assert {"192x192", "512x512"} <= sizes
        for icon in data["icons"]:
            res = http.get(icon["src"])
            assert res.status_code == 200, icon["src"]
            assert res.headers["content-type"] == icon["type"], icon["src"]
            if icon["type"] == "image/png":
                assert res.content.startswith(b"\x89PNG\r\n\x1a\n")

        sw = http.get("/sw.js")
        assert sw.status_code == 200
        assert re.match(r"(text|application)/javascript", sw.headers["content-type"])
        assert "<html" not in sw.text.lower()  # not the SPA fallback
        listed = re.search(r"const PRECACHE_URLS = (\[.*?\])", sw.text)
        assert listed, "the build wrote the precache list into sw.js"
        precached = json.loads(listed.group(1))
        assert "/index.html" in precached
        assert any(url.startswith("/assets/") and url.endswith(".js") for url in precached)
        # the build id changes with the files (a new deploy installs a new worker)
        assert "__KEHU_BUILD_ID__" not in sw.text

        index = http.get("/customers/1")  # a client-side route: the SPA fallback
        assert '<link rel="manifest" href="/manifest.webmanifest"' in index.text


@pytest.mark.e2e
def test_offline_reads_and_queued_writes_are_sent_exactly_once(
    context: Any, page: Any, login: Any, rep1_api: Any, shot: Any
) -> None:
    customer = rep1_api.create_customer(city="杭州市")
    starts = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=2)
    visit = rep1_api.post(
        "/visits", {"customer_id": customer["id"], "starts_at": starts.isoformat()}
    )
    login(page, "rep1", landing="today")
    wait_for_service_worker(page)

    # online, once the worker controls the page: today, the customer with its follow-ups, the visit
    page.reload()
    expect(page.get_by_test_id("today-visits")).to_be_visible()
    page.goto(f"/customers/{customer['id']}?tab=followUps")
    expect(page.get_by_test_id("customer-name")).to_have_text(customer["name"])
    page.goto(f"/visits/{visit['id']}")
    expect(page.get_by_test_id("visit-status")).to_have_attribute("data-status", "planned")
    page.goto(f"/customers/{customer['id']}")
    expect(page.get_by_test_id("customer-name")).to_have_text(customer["name"])
    expect(page.get_by_test_id("outbox-bar")).to_have_count(0)
    fresh = page.evaluate(CACHED_READ, f"/api/v1/customers/{customer['id']}")
    assert fresh == {"ok": True, "from": "network"}, "online, cached data is never served"

    # the train enters a tunnel: a reload still opens the app (the cached shell) and the customer
    context.set_offline(True)
    shell = page.reload()
    assert shell is not None and shell.from_service_worker, "the shell comes from the worker"
    expect(page.get_by_test_id("customer-name")).to_have_text(customer["name"])
    # reads are answered from the rep's cache only because the network is gone
    answered = page.evaluate(CACHED_READ, f"/api/v1/customers/{customer['id']}")
    assert answered == {"ok": True, "from": "cache"}, answered
    # …and only the rep's recent data is kept: a list of customers is not
    assert page.evaluate(CACHED_READ, "/api/v1/customers?limit=5") == {"error": "TypeError"}
    expect(page.get_by_test_id("offline-indicator")).to_be_visible()
    shot(page, "offline-customer")
    page.goto("/")
    expect(page.get_by_test_id("today")).to_be_visible()
    expect(page.get_by_test_id("today-error")).to_have_count(0)

    # a follow-up logged offline is kept, with its Idempotency-Key, and shown as pending
    page.goto(f"/customers/{customer['id']}/follow-ups/new")
    expect(page.get_by_test_id("follow-up-customer")).to_contain_text(customer["name"])
    page.get_by_test_id("follow-up-content").locator("textarea").fill("隧道里记下的电话跟进")
    page.get_by_test_id("follow-up-save").click()
    expect(page.get_by_test_id("follow-up-queued")).to_be_visible()
    expect(page.get_by_test_id("outbox-badge")).to_have_text(re.compile(r"1 条待同步"))
    shot(page, "offline-follow-up-queued")
    # the customer's follow-ups (read from the cache) show it first, marked as pending
    page.get_by_test_id("follow-up-done").click()
    page.wait_for_url(re.compile(rf"/customers/{customer['id']}\?tab=followUps$"))
    pending = page.get_by_test_id("follow-up-pending")
    expect(pending).to_have_count(1)
    expect(pending).to_contain_text("隧道里记下的电话跟进")
    shot(page, "offline-follow-up-pending-in-timeline")

    # a visit completed offline too
    page.goto(f"/visits/{visit['id']}")
    page.get_by_test_id("visit-complete").click()
    page.get_by_test_id("complete-content").locator("textarea").fill("离线完成的拜访")
    page.get_by_test_id("complete-save").click()
    expect(page.get_by_test_id("visit-pending")).to_be_visible()
    expect(page.get_by_test_id("visit-complete")).to_have_count(0)
    badge = page.get_by_test_id("outbox-badge")
    expect(badge).to_have_text(re.compile(r"2 条待同步"))
    badge.click()
    items = page.get_by_test_id("outbox-item")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_have_attribute("data-kind", "follow-up")
    expect(items.nth(1)).to_have_attribute("data-kind", "visit-complete")
    expect(items.nth(0)).to_have_attribute("data-state", "pending")
    shot(page, "offline-outbox-list")
    page.get_by_test_id("outbox-list").locator(".van-popup__close-icon").click()
    expect(page.get_by_test_id("outbox-list")).to_be_hidden()

    queued = page.evaluate(READ_OUTBOX)
    assert [e["kind"] for e in queued] == ["follow-up", "visit-complete"]
    keys = [e["idempotencyKey"] for e in queued]
    assert all(uuid.UUID(k) for k in keys) and len(set(keys)) == 2
    assert queued[1]["ifMatch"]  # the version the rep completed

    # back online, the first answer (the follow-up's) is lost on the way back: the server has
    # written it, the app saw a network error and retries with the same key
    lost: list[int] = []

    def lose_first_answer(route: Any) -> None:
        if route.request.method == "POST" and not lost:
            answer = route.fetch()
            lost.append(answer.status)
            route.abort("internetdisconnected")
            return
        route.fallback()

    context.route(re.compile(r"/api/v1/follow-ups$"), lose_first_answer)
    context.set_offline(False)
    expect(page.get_by_test_id("outbox-badge")).to_have_count(0, timeout=45_000)
    assert lost == [201], "the first send reached the server and its answer was dropped"
    expect(page.get_by_test_id("visit-status")).to_have_attribute(
        "data-status", "completed", timeout=15_000
    )
    context.unroute(re.compile(r"/api/v1/follow-ups$"))
    shot(page, "offline-synced-visit")

    def exactly_once() -> None:
        follow_ups = follow_ups_of(rep1_api, customer["id"])
        contents = [f["content"] for f in follow_ups]
        assert contents.count("隧道里记下的电话跟进") == 1, contents
        assert contents.count("离线完成的拜访") == 1, contents
        done = rep1_api.get(f"/visits/{visit['id']}")
        assert done["status"] == "completed"
        logged = next(f for f in follow_ups if f["content"] == "离线完成的拜访")
        assert done["follow_up_id"] == logged["id"]

    exactly_once()

    # the same queued requests sent again by hand with their keys: answered from the store
    for entry in queued:
        headers = {"Idempotency-Key": entry["idempotencyKey"], "Content-Type": "application/json"}
        if entry["ifMatch"]:
            headers["If-Match"] = entry["ifMatch"]
        again = rep1_api.client.post(
            entry["path"], content=entry["bodyJson"].encode(), headers=headers
        )
        assert again.status_code in (200, 201), again.text
        assert again.headers.get("idempotent-replayed") == "true"
    exactly_once()

    # the customer's follow-ups (now online) show the synced entry once
    page.goto(f"/customers/{customer['id']}?tab=followUps")
    expect(
        page.get_by_test_id("follow-up-item").filter(has_text="隧道里记下的电话跟进")
    ).to_have_count(1)


@pytest.mark.e2e
@pytest.mark.parametrize("choice", ["keep-mine", "discard"])
def test_offline_edit_conflict_is_resolved_by_the_rep(
    context: Any, page: Any, login: Any, rep1_api: Any, shot: Any, choice: str
) -> None:
    customer = rep1_api.create_customer(email="before@example.com")
    login(page, "rep1", landing="today")
    wait_for_service_worker(page)

    page.goto(f"/customers/{customer['id']}")
    expect(page.get_by_test_id("customer-name")).to_have_text(customer["name"])
    page.get_by_test_id("customer-edit").click()
    page.wait_for_url(f"**/customers/{customer['id']}/edit")
    email = page.get_by_test_id("field-email").locator("input")
    expect(email).to_have_value("before@example.com")

    # offline, the rep changes the e-mail; the edit is queued with the ETag they edited
    context.set_offline(True)
    email.fill("mine@example.com")
    page.get_by_test_id("customer-save").click()
    page.wait_for_url(re.compile(rf"/customers/{customer['id']}$"))
    expect(page.get_by_test_id("outbox-badge")).to_have_text(re.compile(r"1 条待同步"))
    queued = page.evaluate(READ_OUTBOX)
    assert [(e["kind"], e["method"], e["body"]) for e in queued] == [
        ("customer-edit", "PATCH", {"email": "mine@example.com"})
    ]

    # meanwhile a colleague changes the same field
    rep1_api.patch_customer(customer["id"], email="theirs@example.com")

    # back online: the server refuses the stale edit (412) and the rep sees both values
    context.set_offline(False)
    sheet = page.get_by_test_id("conflict-sheet")
    expect(sheet).to_be_visible(timeout=30_000)
    row = sheet.locator("[data-testid=conflict-row][data-field=email]")
    expect(row.get_by_test_id("conflict-mine")).to_have_text("mine@example.com")
    expect(row.get_by_test_id("conflict-server")).to_have_text("theirs@example.com")
    expect(page.get_by_test_id("outbox-badge")).to_have_text(re.compile(r"1 条待同步"))
    shot(page, f"offline-conflict-{choice}")
    assert page.evaluate(READ_OUTBOX)[0]["state"] == "conflict"

    page.get_by_test_id(f"conflict-{choice}").click()
    expect(page.get_by_test_id("outbox-badge")).to_have_count(0, timeout=30_000)
    expected = "mine@example.com" if choice == "keep-mine" else "theirs@example.com"
    assert rep1_api.get(f"/customers/{customer['id']}")["email"] == expected
    expect(page.get_by_test_id("field-email")).to_contain_text(expected, timeout=15_000)


@pytest.mark.e2e
def test_sign_out_forgets_the_cached_reads_and_the_queue(
    context: Any, page: Any, login: Any, rep1_api: Any
) -> None:
    customer = rep1_api.create_customer()
    login(page, "rep1", landing="today")
    wait_for_service_worker(page)
    page.goto(f"/customers/{customer['id']}")
    expect(page.get_by_test_id("customer-name")).to_have_text(customer["name"])
    cache_names = "caches.keys().then((names) => names.filter((n) => n.startsWith('kehu-api-')))"
    page.wait_for_function(f"{cache_names}.then((names) => names.length === 1)")
    [own] = page.evaluate(cache_names)
    assert re.fullmatch(r"kehu-api-u\d+", own)  # one cache per user

    # a follow-up waits offline; signing out warns about it, then drops it with the cached reads
    context.set_offline(True)
    page.goto(f"/customers/{customer['id']}/follow-ups/new")
    page.get_by_test_id("follow-up-content").locator("textarea").fill("不会被下一位用户看到")
    page.get_by_test_id("follow-up-save").click()
    expect(page.get_by_test_id("follow-up-queued")).to_be_visible()
    # back online, but the follow-up cannot get through before the rep signs out
    context.route(re.compile(r"/api/v1/follow-ups$"), lambda route: route.abort())
    context.set_offline(False)
    page.goto("/me")
    page.get_by_test_id("logout").click()
    expect(page.locator(".van-dialog")).to_contain_text("1 条更改未同步")
    page.locator(".van-dialog__confirm").click()
    page.wait_for_url("**/login")
    assert page.evaluate(cache_names) == []
    assert page.evaluate(READ_OUTBOX) == []
    contents = [f["content"] for f in follow_ups_of(rep1_api, customer["id"])]
    assert "不会被下一位用户看到" not in contents


@pytest.mark.e2e
def test_a_queued_write_the_server_refuses_is_shown_until_dismissed(
    context: Any, page: Any, login: Any, rep1_api: Any, shot: Any
) -> None:
    customer = rep1_api.create_customer()
    login(page, "rep1", landing="today")
    wait_for_service_worker(page)
    page.goto(f"/customers/{customer['id']}")
    expect(page.get_by_test_id("customer-name")).to_have_text(customer["name"])

    context.set_offline(True)
    page.goto(f"/customers/{customer['id']}/follow-ups/new")
    page.get_by_test_id("follow-up-content").locator("textarea").fill("被拒绝的跟进")
    page.get_by_test_id("follow-up-save").click()
    expect(page.get_by_test_id("follow-up-queued")).to_be_visible()

    # the server refuses it (a 4xx other than 412): not retried, kept and explained
    refused: list[str] = []

    def forbid(route: Any) -> None:
        refused.append(route.request.headers.get("idempotency-key", ""))
        route.fulfill(
            status=403,
            content_type="application/problem+json",
            body=json.dumps(
                {
                    "type": "https://kehu.dev/problems/forbidden",
                    "title": "Forbidden",
                    "status": 403,
                }
            ),
        )

    context.route(re.compile(r"/api/v1/follow-ups$"), forbid)
    context.set_offline(False)
    badge = page.get_by_test_id("outbox-badge")
    expect(badge).to_have_class(re.compile(r"problem"), timeout=30_000)
    badge.click()
    item = page.get_by_test_id("outbox-item")
    expect(item).to_have_attribute("data-state", "failed")
    expect(item).to_contain_text("没有权限执行此操作")
    shot(page, "offline-outbox-failed")
    page.wait_for_timeout(3000)  # the retry timer would have fired by now: a refusal is final
    assert len(refused) == 1 and refused[0]
    page.get_by_test_id("outbox-dismiss").click()
    expect(page.get_by_test_id("outbox-item")).to_have_count(0)
    expect(badge).to_have_count(0)
    assert page.evaluate(READ_OUTBOX) == []
