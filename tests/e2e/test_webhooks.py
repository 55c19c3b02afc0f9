"""Webhooks on a phone-sized Chromium (SPEC J2): the admin reaches them from the Me workbench and
subscribes a receiver this test runs on 127.0.0.1 to `customer.created` (a cloud metadata URL is
refused with the server's 422 under the field), sees the signing secret once and copies it. A
customer is created through the API and the test runs the dispatcher itself (the served app has no
scheduler): the receiver answers 500, and the delivery log shows the failed attempt. Redeliver
reaches the receiver again, which now answers 200: the delivery shows as delivered with a manual
attempt. The receiver got the same event twice, signed with the secret from the dialog. Then the
admin edits (disables) the webhook, enables it again, replaces the secret (a redelivery is signed
with the new one) and deletes it. A manager without `integration.manage` has no entry.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import closing
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import pytest
from playwright.sync_api import expect

from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.services import webhooks
from app.services.webhooks import DispatchReport

pytestmark = pytest.mark.e2e

T = TypeVar("T")


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(self.body)
        return event


class Receiver:
    """A webhook receiver on 127.0.0.1: answers 500 to the first request, 200 afterwards, and
    keeps every request (lower-cased headers, the raw body)."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.requests.append(
                        Received({k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    first = len(receiver.requests) == 1
                status, answer = (500, b'{"error":"receiver is down"}') if first else (200, b"ok")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/kehu"

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


def _in_thread(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion in a thread of its own: Playwright's sync API keeps an
    event loop marked running in the test's thread."""
    done: list[T] = []
    failed: list[BaseException] = []

    def work() -> None:
        try:
            done.append(asyncio.run(make()))
        except BaseException as exc:  # re-raised in the test's thread
            failed.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(120)
    if failed:
        raise failed[0]
    assert done, "the dispatcher did not finish within 120 s"
    return done[0]


def dispatch(database_url: str) -> DispatchReport:
    """One run of the webhook dispatcher (the scheduler's job) against the served app's database."""

    async def run() -> DispatchReport:
        engine = create_engine(database_url)
        try:
            settings = Settings(
                database_url=database_url, webhooks_allow_http=True, webhooks_allow_private=True
            )
            return await webhooks.dispatch(create_sessionmaker(engine), settings)
        finally:
            await engine.dispose()

    return _in_thread(run)


def drain_outbox(database_url: str) -> None:
    """Dispatch until the outbox holds no undispatched event (the demo data's and earlier tests'),
    so that the new subscription receives only what this test causes."""
    path = database_url.removeprefix("sqlite+aiosqlite:///")

    def waiting() -> int:
        with closing(sqlite3.connect(path, timeout=30)) as db:
            query = "SELECT count(*) FROM webhook_events WHERE NOT dispatched"
            return int(db.execute(query).fetchone()[0])

    for _ in range(50):
        if waiting() == 0:
            return
        dispatch(database_url)
    pytest.fail("the webhook outbox did not drain")


def assert_signed(request: Received, secret: str) -> None:
    """`Kehu-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`, recent."""
    parts = dict(p.split("=", 1) for p in request.headers["kehu-signature"].split(","))
    timestamp = int(parts["t"])
    assert abs(time.time() - timestamp) < 300
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected), "the signature does not match the secret"


@pytest.mark.e2e
def test_admin_subscribes_sees_a_failed_delivery_and_redelivers_it(
    page: Any,
    context: Any,
    login: Any,
    shot: Any,
    app_url: str,
    app_env: dict[str, str],
    api_as: Any,
    rep1_api: Any,
    receiver: Receiver,
) -> None:
    database_url = app_env["KEHU_DATABASE_URL"]
    drain_outbox(database_url)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app_url)
    login(page, "admin", landing="today")
    page.get_by_test_id("tab-me").click()
    page.get_by_test_id("workbench-webhooks").click()
    page.wait_for_url("**/integrations/webhooks")
    expect(page.locator(".van-nav-bar__title")).to_have_text("Webhook")
    page.get_by_test_id("webhooks-new").click()
    page.wait_for_url("**/integrations/webhooks/new")

    name = f"ERP 客户推送{uuid.uuid4().hex[:4]}"
    page.get_by_test_id("webhook-name-input").locator("input").fill(name)
    url_field = page.get_by_test_id("webhook-url-input")
    url_field.locator("input").fill("http://169.254.169.254/latest/meta-data")
    created_row = page.locator("[data-testid=webhook-event-type][data-type='customer.created']")
    expect(created_row).to_contain_text("新建客户")
    expect(created_row).to_contain_text("新建了客户（包括导入）")
    expect(page.get_by_test_id("webhook-event-type")).to_have_count(
        len(api_as("admin").get("/webhook-event-types"))
    )
    created_row.click()
    expect(page.locator(".van-checkbox__icon--checked")).to_have_count(1)
    expect(created_row.locator(".van-checkbox__icon--checked")).to_have_count(1)

    # a cloud metadata address: the server's 422 (problem+json) shows under the URL, nothing made
    page.get_by_test_id("webhook-save").click()
    expect(url_field.locator(".van-field__error-message")).to_have_text(
        "接收地址指向本机、内网或其他非公网地址，出于安全原因不能使用"
    )
    expect(page.get_by_test_id("webhook-secret")).to_have_count(0)
    assert not [w for w in api_as("admin").get("/webhooks") if w["name"] == name]

    url_field.locator("input").fill(receiver.url)
    shot(page, "webhook-form")
    page.get_by_test_id("webhook-save").click()

    # the signing secret, once, with a warning, a copy button and how to verify it
    secret_box = page.get_by_test_id("webhook-secret")
    expect(secret_box).to_be_visible()
    expect(page.get_by_test_id("webhook-secret-warning")).to_contain_text("只显示这一次")
    help_text = page.get_by_test_id("webhook-signature-help")
    expect(help_text).to_contain_text("Kehu-Signature: t=…,v1=…")
    expect(help_text).to_contain_text('HMAC-SHA256(secret, "<t>.<raw body>")')
    secret = secret_box.inner_text().strip()
    assert re.fullmatch(r"whsec_[\w-]+", secret), secret
    page.get_by_test_id("webhook-secret-copy").click()
    expect(page.locator(".van-toast")).to_contain_text("已复制")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    shot(page, "webhook-secret")
    page.get_by_test_id("webhook-secret-done").click()

    page.wait_for_url(re.compile(r"/integrations/webhooks/\d+$"))
    webhook_id = int(page.url.rsplit("/", 1)[1])
    expect(page.get_by_test_id("webhook-secret")).to_have_count(0)
    expect(page.get_by_test_id("webhook-detail-name")).to_have_text(name)
    expect(page.get_by_test_id("webhook-detail-state")).to_have_text("已启用")
    expect(page.get_by_test_id("webhook-detail-url")).to_have_text(receiver.url)
    expect(page.get_by_test_id("webhook-detail-event")).to_have_text(["新建客户"])
    expect(page.get_by_test_id("webhook-deliveries-empty")).to_be_visible()
    assert secret not in page.content()
    saved = api_as("admin").get(f"/webhooks/{webhook_id}")
    assert (saved["url"], saved["event_types"]) == (receiver.url, ["customer.created"])

    # a customer is created; the dispatcher delivers it: the receiver answers 500
    customer = rep1_api.create_customer()
    report = dispatch(database_url)
    assert (report.fanned_out, report.failed_attempts, report.delivered) == (1, 1, 0)
    first = receiver.received()
    assert len(first) == 1
    event = first[0].event
    assert (event["type"], event["data"]["customer_id"]) == ("customer.created", customer["id"])
    assert first[0].headers["kehu-event-id"] == event["id"]

    page.get_by_test_id("webhook-deliveries-refresh").click()
    delivery = page.get_by_test_id("webhook-delivery")
    expect(delivery).to_have_count(1)
    expect(delivery).to_have_attribute("data-event-id", event["id"])
    expect(delivery).to_have_attribute("data-status", "pending")
    expect(delivery.get_by_test_id("webhook-delivery-status")).to_have_text("等待重试")
    expect(delivery.get_by_test_id("webhook-delivery-type")).to_have_text("新建客户")
    expect(delivery.get_by_test_id("webhook-delivery-attempts")).to_have_text("尝试 1 次")
    expect(delivery.get_by_test_id("webhook-delivery-last")).to_have_text("最近结果：HTTP 500")
    expect(delivery.get_by_test_id("webhook-delivery-next")).to_contain_text("下次重试")
    expect(page.get_by_test_id("webhook-detail-failures")).to_have_text("连续失败 1 次")
    delivery.get_by_test_id("webhook-delivery-log-toggle").click()
    attempts = delivery.get_by_test_id("webhook-attempt")
    expect(attempts).to_have_count(1)
    expect(attempts.first).to_have_attribute("data-manual", "false")
    expect(attempts.first.get_by_test_id("webhook-attempt-status")).to_have_text("HTTP 500")
    expect(attempts.first.get_by_test_id("webhook-attempt-kind")).to_have_text("自动")
    expect(attempts.first.get_by_test_id("webhook-attempt-latency")).to_have_text(
        re.compile(r"^\d+ 毫秒$")
    )
    expect(attempts.first.get_by_test_id("webhook-attempt-excerpt")).to_contain_text(
        "receiver is down"
    )
    shot(page, "webhook-delivery-failed", full_page=True)

    # redeliver: the receiver answers 200, the entry shows it delivered with a manual attempt
    delivery.get_by_test_id("webhook-redeliver").click()
    expect(delivery.get_by_test_id("webhook-redeliver-result")).to_contain_text(
        "刚刚重新投递：HTTP 200"
    )
    expect(delivery).to_have_attribute("data-status", "delivered")
    expect(delivery.get_by_test_id("webhook-delivery-status")).to_have_text("已送达")
    expect(delivery.get_by_test_id("webhook-delivery-attempts")).to_have_text("尝试 2 次")
    expect(delivery.get_by_test_id("webhook-delivery-last")).to_have_text("最近结果：HTTP 200")
    expect(delivery.get_by_test_id("webhook-delivery-next")).to_have_count(0)
    expect(attempts).to_have_count(2)
    manual = delivery.locator("[data-testid=webhook-attempt][data-manual=true]")
    expect(manual).to_have_count(1)
    expect(attempts.first).to_have_attribute("data-manual", "true")  # newest first
    expect(manual.get_by_test_id("webhook-attempt-status")).to_have_text("HTTP 200")
    expect(manual.get_by_test_id("webhook-attempt-kind")).to_have_text("手动")
    expect(page.get_by_test_id("webhook-detail-failures")).to_have_count(0)
    shot(page, "webhook-delivery-redelivered", full_page=True)

    # the same event twice, both signed with the secret the dialog showed
    both = receiver.received()
    assert len(both) == 2
    assert [r.event["id"] for r in both] == [event["id"], event["id"]]
    assert [r.headers["kehu-event-id"] for r in both] == [event["id"], event["id"]]
    assert both[0].body == both[1].body
    for request in both:
        assert_signed(request, secret)

    # the filter asks the server: delivered shows it, "gave up" nothing
    status_filter = page.get_by_test_id("webhook-status-filter-option")
    status_filter.filter(has_text="已放弃").click()
    expect(page.get_by_test_id("webhook-deliveries-empty")).to_be_visible()
    expect(delivery).to_have_count(0)
    status_filter.filter(has_text="已送达").click()
    expect(delivery).to_have_count(1)
    expect(delivery).to_have_attribute("data-status", "delivered")
    page.set_viewport_size({"width": 1280, "height": 800})
    shot(page, "webhook-detail-desktop")
    page.set_viewport_size({"width": 390, "height": 844})

    # edited: renamed and disabled by hand; then enabled again from its page
    page.get_by_test_id("webhook-edit").click()
    page.wait_for_url(f"**/integrations/webhooks/{webhook_id}/edit")
    expect(page.get_by_test_id("webhook-url-input").locator("input")).to_have_value(receiver.url)
    expect(page.locator(".van-checkbox__icon--checked")).to_have_count(1)
    page.get_by_test_id("webhook-name-input").locator("input").fill(f"{name}（停用）")
    page.get_by_test_id("webhook-enabled").click()
    page.get_by_test_id("webhook-save").click()
    page.wait_for_url(re.compile(rf"/integrations/webhooks/{webhook_id}$"))
    expect(page.get_by_test_id("webhook-detail-name")).to_have_text(f"{name}（停用）")
    expect(page.get_by_test_id("webhook-detail-state")).to_have_text("已停用")
    expect(page.get_by_test_id("webhook-detail-disabled")).to_contain_text("已手动停用")

    page.get_by_test_id("webhook-enable").click()
    expect(page.get_by_test_id("webhook-detail-state")).to_have_text("已启用")
    expect(page.get_by_test_id("webhook-detail-disabled")).to_have_count(0)
    assert api_as("admin").get(f"/webhooks/{webhook_id}")["enabled"] is True

    # the list: shortened URL, the event type as a tag, enabled
    page.goto("/integrations/webhooks")
    row = page.get_by_test_id("webhook").filter(has_text=name)
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("webhook-state")).to_have_text("已启用")
    expect(row.get_by_test_id("webhook-event")).to_have_text(["新建客户"])
    port = receiver.server.server_address[1]
    expect(row.get_by_test_id("webhook-url")).to_have_text(f"http://127.0.0.1:{port}/hooks/kehu")
    expect(row.get_by_test_id("webhook-url")).to_have_attribute("title", receiver.url)
    shot(page, "webhooks")
    page.set_viewport_size({"width": 1280, "height": 800})
    shot(page, "webhooks-desktop")
    page.set_viewport_size({"width": 390, "height": 844})

    # a new secret (after a confirmation), shown once; a redelivery is signed with it
    row.click()
    page.wait_for_url(re.compile(rf"/integrations/webhooks/{webhook_id}$"))
    page.get_by_test_id("webhook-rotate").click()
    page.locator(".van-dialog").filter(has_text="旧密钥立即失效").locator(
        ".van-dialog__confirm"
    ).click()
    expect(page.get_by_test_id("webhook-secret-dialog")).to_contain_text("签名密钥已更换")
    new_secret = page.get_by_test_id("webhook-secret").inner_text().strip()
    assert new_secret.startswith("whsec_") and new_secret != secret
    page.get_by_test_id("webhook-secret-done").click()
    expect(page.get_by_test_id("webhook-secret")).to_have_count(0)
    delivery.get_by_test_id("webhook-redeliver").click()
    expect(delivery.get_by_test_id("webhook-delivery-attempts")).to_have_text("尝试 3 次")
    third = receiver.received()
    assert len(third) == 3
    assert_signed(third[2], new_secret)
    with pytest.raises(AssertionError):
        assert_signed(third[2], secret)

    # deleted after a confirmation: gone from the list and the API
    page.get_by_test_id("webhook-delete").click()
    dialog = page.locator(".van-dialog").filter(has_text=name)
    expect(dialog).to_contain_text("删除 Webhook")
    dialog.locator(".van-dialog__confirm").click()
    page.wait_for_url(re.compile(r"/integrations/webhooks$"))
    expect(page.get_by_test_id("webhook").filter(has_text=name)).to_have_count(0)
    gone = api_as("admin").client.get(f"/webhooks/{webhook_id}")
    assert gone.status_code == 404


@pytest.mark.e2e
def test_managers_without_integration_manage_see_no_webhooks(page: Any, login: Any) -> None:
    login(page, "mgr1", landing="today")
    page.get_by_test_id("tab-me").click()
    expect(page.get_by_test_id("workbench-analytics")).to_be_visible()
    expect(page.get_by_test_id("workbench-webhooks")).to_have_count(0)
