"""The reminder dispatcher: inbox and Web Push, exactly once per device (SPEC D3)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import httpx
import pytest
from sqlalchemy import func, insert, select

from app.models import Notification, PushDelivery, PushSubscription, Reminder
from app.services.notifications import dispatch
from tests.factories import auth, make_customer, make_org
from tests.push_endpoint import PushService, Reply, verify_vapid


@pytest.fixture(scope="module")
def push_service():
    with PushService().running() as service:
        yield service


@pytest.fixture
async def org(maker, push_service):
    push_service.clear()
    return await make_org(maker)


@pytest.fixture
async def http():
    async with httpx.AsyncClient() as client:
        yield client


async def subscribe(client, app, user, push_service, token=None):
    device = push_service.subscriber(token)
    sub = device.subscription
    response = await client.post(
        "/api/v1/push/subscriptions",
        json={"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}},
        headers=auth(app, user),
    )
    assert response.status_code == 201, response.text
    return device


async def plan_visit(client, app, user, customer, starts, offsets=(30,)):
    response = await client.post(
        "/api/v1/visits",
        json={
            "customer_id": customer.id,
            "starts_at": starts.isoformat(),
            "reminder_offsets_minutes": list(offsets),
        },
        headers=auth(app, user),
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_due_reminder_reaches_inbox_and_every_device_once(
    app, client, maker, settings, org, push_service, http, db
):
    customer = await make_customer(maker, org.rep_a, "推送公司")
    phone = await subscribe(client, app, org.rep_a, push_service)
    tablet = await subscribe(client, app, org.rep_a, push_service)
    starts = dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)
    visit = await plan_visit(client, app, org.rep_a, customer, starts)
    due = starts - dt.timedelta(minutes=30)

    early = await dispatch(maker, settings, http, now=due - dt.timedelta(seconds=1))
    assert early.notified == 0 and push_service.count == 0

    stats = await dispatch(maker, settings, http, now=due + dt.timedelta(seconds=5))
    assert (stats.notified, stats.pushed) == (1, 2)
    again = await dispatch(maker, settings, http, now=due + dt.timedelta(seconds=65))
    assert (again.notified, again.pushed) == (0, 0)

    inbox = (await client.get("/api/v1/notifications", headers=auth(app, org.rep_a))).json()[
        "items"
    ]
    assert len(inbox) == 1 and inbox[0]["kind"] == "visit_reminder"
    assert inbox[0]["link"] == f"/visits/{visit['id']}"
    for device in (phone, tablet):
        [push] = push_service.requests_for(device.token)
        payload = device.decrypt_json(push.body)
        assert payload == {
            "notification_id": inbox[0]["id"],
            "kind": "visit_reminder",
            "title": "拜访提醒：推送公司",
            "body": inbox[0]["body"],
            "link": f"/visits/{visit['id']}",
        }
        assert int(push.headers["TTL"]) > 0 and push.headers["Urgency"] == "high"
        assert push.headers["Topic"] == f"n{inbox[0]['id']}"
        claims = verify_vapid(push, audience=push_service.base_url)
        assert claims["sub"] and claims["exp"] - time.time() <= 24 * 3600
    states = (await db.scalars(select(PushDelivery.state))).all()
    assert sorted(states) == ["delivered", "delivered"]


async def test_racing_dispatchers_deliver_each_reminder_once_per_device(
    app, client, maker, settings, org, push_service, http, db
):
    phone = await subscribe(client, app, org.rep_a, push_service)
    now = dt.datetime.now(dt.UTC)
    await db.execute(
        insert(Reminder),
        [
            {
                "user_id": org.rep_a.id,
                "kind": "visit_reminder",
                "due_at": now - dt.timedelta(seconds=i % 50),
                "title": f"提醒 {i}",
                "body": "",
                "link": "/",
                "data": {},
                "state": "pending",
                "created_at": now,
            }
            for i in range(1000)
        ],
    )
    await db.commit()
    first, second = await asyncio.gather(
        dispatch(maker, settings, http, now=now), dispatch(maker, settings, http, now=now)
    )
    assert first.notified + second.notified == 1000
    assert first.pushed + second.pushed == 1000
    assert await db.scalar(select(func.count()).select_from(Notification)) == 1000
    received = push_service.requests_for(phone.token)
    titles = [phone.decrypt_json(p.body)["title"] for p in received]
    assert len(titles) == 1000 and len(set(titles)) == 1000


async def test_reminders_due_during_downtime(
    app, client, maker, settings, org, push_service, http, db
):
    phone = await subscribe(client, app, org.rep_a, push_service)
    now = dt.datetime.now(dt.UTC)
    lateness = dt.timedelta(minutes=settings.reminder_max_lateness_minutes)
    for title, due in (
        ("刚刚到期", now - lateness + dt.timedelta(minutes=5)),
        ("早已过期", now - lateness - dt.timedelta(minutes=5)),
    ):
        db.add(
            Reminder(
                user_id=org.rep_a.id,
                kind="visit_reminder",
                due_at=due,
                title=title,
                body="",
                link="/",
            )
        )
    await db.commit()
    stats = await dispatch(maker, settings, http, now=now)
    assert (stats.notified, stats.missed, stats.pushed) == (1, 1, 1)
    kinds = {
        n["title"]: n["kind"]
        for n in (await client.get("/api/v1/notifications", headers=auth(app, org.rep_a))).json()[
            "items"
        ]
    }
    assert kinds == {"刚刚到期": "visit_reminder", "错过的提醒：早已过期": "missed_reminder"}
    assert [
        phone.decrypt_json(p.body)["title"] for p in push_service.requests_for(phone.token)
    ] == ["刚刚到期"]


async def test_gone_subscription_is_deleted(
    app, client, maker, settings, org, push_service, http, db
):
    phone = await subscribe(client, app, org.rep_a, push_service)
    push_service.reply(phone.token, 410)
    db.add(
        Reminder(
            user_id=org.rep_a.id,
            kind="visit_reminder",
            due_at=dt.datetime.now(dt.UTC),
            title="t",
            body="",
            link="/",
        )
    )
    await db.commit()
    stats = await dispatch(maker, settings, http)
    assert stats.gone == 1
    assert await db.scalar(select(func.count()).select_from(PushSubscription)) == 0


async def test_server_errors_are_retried_with_backoff(
    app, client, maker, settings, org, push_service, http, db
):
    phone = await subscribe(client, app, org.rep_a, push_service)
    push_service.reply(phone.token, 500, Reply(429, retry_after="120"), 201)
    now = dt.datetime.now(dt.UTC)
    db.add(
        Reminder(
            user_id=org.rep_a.id, kind="visit_reminder", due_at=now, title="重试", body="", link="/"
        )
    )
    await db.commit()
    assert (await dispatch(maker, settings, http, now=now)).retried == 1
    delivery = await db.scalar(select(PushDelivery))
    assert delivery.state == "retry" and delivery.next_attempt_at > now
    assert (await dispatch(maker, settings, http, now=delivery.next_attempt_at)).retried == 1
    await db.rollback()  # end the read snapshot
    delivery = await db.scalar(select(PushDelivery))
    assert delivery.attempts == 2 and delivery.next_attempt_at >= now + dt.timedelta(seconds=120)
    assert (await dispatch(maker, settings, http, now=delivery.next_attempt_at)).pushed == 1
    assert len(push_service.requests_for(phone.token)) == 3


async def test_quiet_hours_hold_pushes_but_not_the_inbox(
    app, client, maker, settings, org, push_service, http, db
):
    phone = await subscribe(client, app, org.rep_a, push_service)
    put = await client.put(
        "/api/v1/notification-settings",
        json={
            "push_kinds": {},
            "quiet_hours": {"start": "22:00", "end": "07:00"},
            "digest_hour": 8,
        },
        headers=auth(app, org.rep_a),
    )
    assert put.status_code == 200
    night = dt.datetime(2026, 11, 24, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    db.add(
        Reminder(
            user_id=org.rep_a.id,
            kind="visit_reminder",
            due_at=night,
            title="夜里",
            body="",
            link="/",
        )
    )
    await db.commit()
    stats = await dispatch(maker, settings, http, now=night)
    assert stats.notified == 1 and stats.pushed == 0
    morning = dt.datetime(2026, 11, 25, 7, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert (await db.scalar(select(PushDelivery.next_attempt_at))) == morning
    assert (await dispatch(maker, settings, http, now=morning)).pushed == 1
    assert len(push_service.requests_for(phone.token)) == 1


async def test_kinds_switched_off_do_not_push(
    app, client, maker, settings, org, push_service, http, db
):
    phone = await subscribe(client, app, org.rep_a, push_service)
    await client.put(
        "/api/v1/notification-settings",
        json={"push_kinds": {"visit_reminder": False}},
        headers=auth(app, org.rep_a),
    )
    db.add(
        Reminder(
            user_id=org.rep_a.id,
            kind="visit_reminder",
            due_at=dt.datetime.now(dt.UTC),
            title="静音",
            body="",
            link="/",
        )
    )
    await db.commit()
    stats = await dispatch(maker, settings, http)
    assert (
        stats.notified == 1 and stats.pushed == 0 and push_service.requests_for(phone.token) == []
    )


async def test_two_dispatcher_processes_deliver_each_reminder_once(
    app, client, maker, settings, org, push_service, db, database_url
):
    """Two OS processes (`kehu dispatch-reminders`) racing over the same 1,000 due reminders."""
    import os
    import sys
    from pathlib import Path

    phone = await subscribe(client, app, org.rep_a, push_service)
    now = dt.datetime.now(dt.UTC)
    await db.execute(
        insert(Reminder),
        [
            {
                "user_id": org.rep_a.id,
                "kind": "visit_reminder",
                "due_at": now - dt.timedelta(seconds=1),
                "title": f"进程 {i}",
                "body": "",
                "link": "/",
                "data": {},
                "state": "pending",
                "created_at": now,
            }
            for i in range(1000)
        ],
    )
    await db.commit()
    env = {
        **os.environ,
        "KEHU_DATABASE_URL": database_url,
        "KEHU_PUSH_ALLOW_HTTP": "true",
        "KEHU_LOG_LEVEL": "WARNING",
    }
    kehu = str(Path(sys.executable).parent / "kehu")
    runs = [
        await asyncio.create_subprocess_exec(
            kehu,
            "dispatch-reminders",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = await asyncio.gather(*(run.communicate() for run in runs))
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert await db.scalar(select(func.count()).select_from(Notification)) == 1000
    titles = [phone.decrypt_json(p.body)["title"] for p in push_service.requests_for(phone.token)]
    assert len(titles) == 1000 and len(set(titles)) == 1000
