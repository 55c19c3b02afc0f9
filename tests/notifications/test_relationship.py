"""Relationship reminders (D7) and the morning digest (D6): generated once, delivered once."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from sqlalchemy import select

from app.models import NotificationSettings, Reminder
from app.services.notifications import dispatch
from app.services.relationship import schedule_digests, schedule_relationship_reminders
from tests.factories import auth, make_contact, make_customer, make_org

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture
async def org(maker):
    return await make_org(maker)


async def test_birthdays_and_anniversaries_remind_the_owner_days_ahead(
    app, client, maker, settings, org, db
):
    now = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)
    person = await make_customer(
        maker, org.rep_a, "王女士", kind="person", birth_date=dt.date(1990, 11, 25)
    )
    company = await make_customer(
        maker,
        org.rep_a,
        "老客户",
        deal_status="signed",
        signed_at=dt.datetime(2023, 11, 26, 3, 0, tzinfo=dt.UTC),
    )
    await make_contact(maker, company, "赵总", birth_date=dt.date(1975, 12, 20))  # too far ahead
    await make_customer(
        maker, org.rep_a, "今年刚签", deal_status="signed", signed_at=now - dt.timedelta(days=5)
    )
    await make_customer(maker, None, "公海客户", kind="person", birth_date=dt.date(1990, 11, 24))

    assert await schedule_relationship_reminders(maker, 3, now) == 2
    assert await schedule_relationship_reminders(maker, 3, now) == 0  # idempotent
    rows = (await db.scalars(select(Reminder).order_by(Reminder.id))).all()
    assert [(r.kind, r.customer_id, r.user_id) for r in rows] == [
        ("birthday", person.id, org.rep_a.id),
        ("anniversary", company.id, org.rep_a.id),
    ]
    assert rows[0].title == "王女士 生日：11-25"
    assert rows[0].due_at == now.astimezone(dt.UTC)  # 3 days ahead of 11-25 09:00 has passed: now
    assert (
        rows[1].due_at == dt.datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI).astimezone(dt.UTC)
        or rows[1].due_at == now
    )
    async with httpx.AsyncClient() as http:
        stats = await dispatch(maker, settings, http, now=now + dt.timedelta(minutes=1))
    assert stats.notified == 2
    kinds = {
        n["kind"]
        for n in (await client.get("/api/v1/notifications", headers=auth(app, org.rep_a))).json()[
            "items"
        ]
    }
    assert kinds == {"birthday", "anniversary"}


async def test_future_birthday_waits_until_its_reminder_day(maker, org, db):
    now = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)
    await make_customer(maker, org.rep_a, "李先生", kind="person", birth_date=dt.date(1988, 11, 26))
    assert await schedule_relationship_reminders(maker, 3, now) == 1
    reminder = await db.scalar(select(Reminder))
    assert reminder.due_at == dt.datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI).astimezone(
        dt.UTC
    ) or reminder.due_at >= now.astimezone(dt.UTC)


async def test_digest_once_per_day_at_the_users_hour(app, client, maker, settings, org, db):
    db.add(NotificationSettings(user_id=org.rep_b.id, digest_hour=None))  # opted out
    db.add(NotificationSettings(user_id=org.rep_c.id, digest_hour=10))
    await db.commit()
    await make_customer(
        maker,
        org.rep_a,
        "待跟进",
        next_follow_up_at=dt.datetime(2026, 11, 23, 15, 0, tzinfo=SHANGHAI),
    )
    early = dt.datetime(2026, 11, 23, 7, 30, tzinfo=SHANGHAI)
    assert await schedule_digests(maker, early) == 0
    eight = dt.datetime(2026, 11, 23, 8, 5, tzinfo=SHANGHAI)
    created = await schedule_digests(maker, eight)
    assert (
        created == 5
    )  # admin, mgr_east, mgr_hz, rep_a, rep_d: default 8:00; rep_b off; rep_c at 10
    assert await schedule_digests(maker, eight + dt.timedelta(minutes=10)) == 0
    assert await schedule_digests(maker, dt.datetime(2026, 11, 23, 10, 1, tzinfo=SHANGHAI)) == 1
    digest = await db.scalar(select(Reminder).where(Reminder.user_id == org.rep_a.id))
    assert digest.kind == "digest" and "1 位客户待跟进" in digest.body
    assert await schedule_digests(maker, dt.datetime(2026, 11, 24, 8, 0, tzinfo=SHANGHAI)) == 5
