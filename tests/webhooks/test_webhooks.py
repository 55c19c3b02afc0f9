"""Webhooks (SPEC J2): the outbox written with the change, signed deliveries, retries with
backoff, the attempt log, manual redelivery, disabling after a run of failures."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select, update

from app.models import Notification, WebhookDelivery, WebhookEvent, WebhookSubscription
from app.models.base import utcnow
from app.services import webhooks
from tests.factories import auth, make_customer, make_org

HOOKS = "/api/v1/webhooks"


@pytest.fixture
async def org(maker):
    return await make_org(maker)


@dataclass
class Receiver:
    """A local HTTP endpoint that records what it is sent and answers ``statuses`` in turn."""

    statuses: list[int] = field(default_factory=lambda: [200])
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")[1:]
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines if h)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.received.append((headers, body))
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        answer = b"thanks" if status < 300 else b"receiver broke"
        head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(answer)}\r\nConnection: close"
        writer.write(head.encode() + b"\r\n\r\n" + answer)
        await writer.drain()
        writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    server = await asyncio.start_server(found.handle, "127.0.0.1", 0)
    found.port = server.sockets[0].getsockname()[1]
    async with server:
        yield found


async def subscribe(client, app, org, url: str, types: list[str]) -> dict[str, Any]:
    response = await client.post(
        HOOKS,
        json={"name": "ERP", "url": url, "event_types": types},
        headers=auth(app, org.admin),
    )
    assert response.status_code == 201, response.text
    return response.json()


async def deliveries(maker) -> list[WebhookDelivery]:
    async with maker() as session:
        return list(
            (await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))).all()
        )


async def test_a_change_is_delivered_signed(app, client, maker, org, settings, receiver):
    hook = await subscribe(client, app, org, receiver.url, ["customer.created"])
    assert hook["secret"].startswith("whsec_")
    created = await client.post(
        "/api/v1/customers", json={"name": "钩子客户"}, headers=auth(app, org.rep_a)
    )
    assert created.status_code == 201
    report = await webhooks.dispatch(maker, settings)
    assert (report.fanned_out, report.delivered) == (1, 1)
    headers, body = receiver.received[0]
    payload = json.loads(body)
    assert payload["type"] == "customer.created"
    assert payload["data"]["customer_id"] == created.json()["id"]
    assert payload["data"]["actor_id"] == org.rep_a.id
    assert headers["kehu-event-id"] == payload["id"]
    stamp, signature = (p.split("=", 1)[1] for p in headers["kehu-signature"].split(","))
    expected = hmac.new(hook["secret"].encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    assert signature == expected.hexdigest()
    assert abs(int(stamp) - utcnow().timestamp()) < 60
    log = (
        await client.get(f"{HOOKS}/{hook['id']}/deliveries", headers=auth(app, org.admin))
    ).json()
    assert [(d["status"], d["attempts"], d["event_type"]) for d in log] == [
        ("delivered", 1, "customer.created")
    ]
    assert log[0]["log"][0]["status"] == 200 and log[0]["log"][0]["response_excerpt"] == "thanks"
    # Nothing left to send.
    again = await webhooks.dispatch(maker, settings)
    assert (again.fanned_out, again.delivered) == (0, 0) and len(receiver.received) == 1


async def test_events_are_written_with_the_change_or_not_at_all(app, client, maker, org):
    refused = await client.post(
        "/api/v1/customers", json={"name": ""}, headers=auth(app, org.rep_a)
    )
    assert refused.status_code == 422
    customer = await make_customer(maker, org.rep_a, "转移客户")
    moved = await client.post(
        "/api/v1/customers/transfer",
        json={"customer_ids": [customer.id], "to_owner_id": org.rep_b.id},
        headers=auth(app, org.admin),
    )
    assert moved.status_code == 200, moved.text
    with pytest.raises(RuntimeError):
        async with maker() as session, session.begin():
            webhooks.emit_one(session, "customer.updated", {"customer_id": customer.id})
            await session.flush()
            raise RuntimeError("the change fails")
    async with maker() as session:
        events = (await session.execute(select(WebhookEvent.type, WebhookEvent.data))).all()
    assert [(t, d["customer_id"], d["to_owner_id"]) for t, d in events] == [
        ("customer.transferred", customer.id, org.rep_b.id)
    ]


async def test_a_failing_receiver_is_retried_with_backoff_then_given_up(
    app, client, maker, org, settings, receiver
):
    receiver.statuses = [500, 503, 200]
    await subscribe(client, app, org, receiver.url, ["customer.created"])
    await make_customer(maker, org.rep_a, "重试客户")
    async with maker() as session, session.begin():
        webhooks.emit_one(session, "customer.created", {"customer_id": 1})
    start = utcnow()
    await webhooks.dispatch(maker, settings, start)
    first = await deliveries(maker)
    assert [(d.status, d.attempts, d.last_status) for d in first] == [("pending", 1, 500)]
    wait = first[0].next_attempt_at - start
    assert dt.timedelta(seconds=14) <= wait <= dt.timedelta(seconds=46)
    # Not due yet: nothing is sent.
    await webhooks.dispatch(maker, settings, start + dt.timedelta(seconds=10))
    assert len(receiver.received) == 1
    later = start + dt.timedelta(minutes=2)
    await webhooks.dispatch(maker, settings, later)
    second = (await deliveries(maker))[0]
    assert (second.status, second.attempts, second.last_status) == ("pending", 2, 503)
    assert second.next_attempt_at - later >= dt.timedelta(seconds=29)
    # A day after it was first tried, the next failure is the last.
    receiver.statuses = [500]
    async with maker() as session, session.begin():
        await session.execute(
            update(WebhookDelivery).values(
                created_at=utcnow() - dt.timedelta(hours=25), next_attempt_at=utcnow()
            )
        )
    report = await webhooks.dispatch(maker, settings)
    assert report.gave_up == 1
    assert [(d.status, d.attempts) for d in await deliveries(maker)] == [("failed", 3)]


async def test_a_subscription_that_keeps_failing_is_disabled_and_its_owner_told(
    app, client, maker, org, settings, receiver
):
    receiver.statuses = [500]
    hook = await subscribe(client, app, org, receiver.url, ["customer.created"])
    for name in ("甲", "乙", "丙"):
        await client.post("/api/v1/customers", json={"name": name}, headers=auth(app, org.admin))
    strict = settings.model_copy(update={"webhook_failure_limit": 3})
    report = await webhooks.dispatch(maker, strict)
    assert report.disabled == 1
    shown = (await client.get(f"{HOOKS}/{hook['id']}", headers=auth(app, org.admin))).json()
    assert shown["enabled"] is False and "3 deliveries in a row failed" in shown["disabled_reason"]
    async with maker() as session:
        told = (
            await session.scalars(
                select(Notification.kind).where(Notification.user_id == org.admin.id)
            )
        ).all()
    assert "webhook_disabled" in told
    # New events no longer reach it; re-enabling restarts the count.
    await client.post("/api/v1/customers", json={"name": "丁"}, headers=auth(app, org.admin))
    assert (await webhooks.dispatch(maker, strict)).fanned_out == 0
    enabled = await client.patch(
        f"{HOOKS}/{hook['id']}",
        json={"enabled": True},
        headers={**auth(app, org.admin), "If-Match": f'"{shown["version"]}"'},
    )
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["consecutive_failures"] == 0 and enabled.json()["enabled"]


async def test_manual_redelivery_sends_again_and_is_logged(
    app, client, maker, org, settings, receiver
):
    hook = await subscribe(client, app, org, receiver.url, ["customer.created"])
    await client.post("/api/v1/customers", json={"name": "重发"}, headers=auth(app, org.admin))
    await webhooks.dispatch(maker, settings)
    delivery = (await deliveries(maker))[0]
    url = f"{HOOKS}/{hook['id']}/deliveries/{delivery.id}/redeliver"
    again = await client.post(url, headers=auth(app, org.admin))
    assert again.status_code == 200, again.text
    assert again.json()["manual"] is True and again.json()["status"] == 200
    assert len(receiver.received) == 2
    assert json.loads(receiver.received[0][1])["id"] == json.loads(receiver.received[1][1])["id"]
    log = (
        await client.get(f"{HOOKS}/{hook['id']}/deliveries", headers=auth(app, org.admin))
    ).json()
    assert [a["manual"] for a in log[0]["log"]] == [True, False]
    other = await client.post(
        f"{HOOKS}/{hook['id']}/deliveries/999/redeliver", headers=auth(app, org.admin)
    )
    assert other.status_code == 404


async def test_only_integration_admins_manage_webhooks(app, client, org, receiver):
    assert (await client.get(HOOKS)).status_code == 401
    assert (await client.get(HOOKS, headers=auth(app, org.rep_a))).status_code == 403
    made = await client.post(
        HOOKS,
        json={"name": "x", "url": receiver.url, "event_types": ["customer.created"]},
        headers=auth(app, org.mgr_east),
    )
    assert made.status_code == 403
    key = await client.post(
        "/api/v1/api-keys",
        json={"name": "k", "scopes": ["config:read"]},
        headers=auth(app, org.admin),
    )
    bearer = {"Authorization": f"Bearer {key.json()['token']}"}
    assert (await client.get(HOOKS, headers=bearer)).status_code == 403
    assert (await client.get(f"{HOOKS}/12345", headers=auth(app, org.admin))).status_code == 404
    listed = (await client.get(HOOKS, headers=auth(app, org.admin))).json()
    assert listed == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event_types": ["customer.exploded"]}, "event_types"),
        ({"event_types": []}, "event_types"),
        ({"url": "ftp://example.com/hook"}, "url"),
    ],
)
async def test_bad_subscriptions_are_refused(app, client, maker, org, body, field):
    payload = {"name": "x", "url": "https://example.com/hook", "event_types": ["customer.created"]}
    response = await client.post(HOOKS, json={**payload, **body}, headers=auth(app, org.admin))
    assert response.status_code == 422, response.text
    assert field in response.text
    async with maker() as session:
        assert await session.scalar(select(WebhookSubscription)) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",
        "https://127.0.0.1/hook",
        "https://0177.0.0.1/hook",
        "https://0x7f.1/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://10.1.2.3/hook",
        "https://localhost/hook",
    ],
)
def test_production_settings_refuse_unsafe_receivers(settings, url):
    strict = settings.model_copy(
        update={"webhooks_allow_http": False, "webhooks_allow_private": False}
    )
    with pytest.raises(Exception) as refused:
        webhooks.check_url(url, strict)
    assert getattr(refused.value, "status", None) == 422
