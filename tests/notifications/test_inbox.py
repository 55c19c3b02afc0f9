"""Inbox, stream, settings, push subscriptions, change notices, today (SPEC D4, D5, B6)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest
from sqlalchemy import func, select, text

from app.models import Notification, PushSubscription
from app.services.notifications import Draft, deliver
from tests.factories import add_team_member, auth, make_contact, make_customer, make_org
from tests.push_endpoint import PushService


@pytest.fixture
async def org(maker):
    return await make_org(maker)


async def notify(maker, user, *titles):
    async with maker() as session, session.begin():
        return await deliver(
            session,
            [Draft(user.id, "visit_reminder", t, "", "/", {}) for t in titles],
            dt.datetime.now(dt.UTC),
        )


async def test_inbox_lists_counts_and_marks_read(app, client, maker, org):
    ids = await notify(maker, org.rep_a, "一", "二", "三")
    await notify(maker, org.rep_b, "别人的")
    headers = auth(app, org.rep_a)
    listed = (
        await client.get("/api/v1/notifications", params={"limit": 2}, headers=headers)
    ).json()
    assert [n["title"] for n in listed["items"]] == ["三", "二"] and listed["next_cursor"]
    rest = (
        await client.get(
            "/api/v1/notifications", params={"cursor": listed["next_cursor"]}, headers=headers
        )
    ).json()
    assert [n["title"] for n in rest["items"]] == ["一"]
    assert (await client.get("/api/v1/notifications/unread-count", headers=headers)).json() == {
        "count": 3
    }
    assert (
        await client.post(f"/api/v1/notifications/{ids[0]}/read", headers=headers)
    ).status_code == 204
    unread = (
        await client.get("/api/v1/notifications", params={"unread": True}, headers=headers)
    ).json()["items"]
    assert [n["title"] for n in unread] == ["三", "二"]
    assert (await client.post("/api/v1/notifications/read-all", headers=headers)).json() == {
        "updated": 2
    }
    assert (await client.get("/api/v1/notifications/unread-count", headers=headers)).json() == {
        "count": 0
    }


async def test_someone_elses_notification_is_404(app, client, maker, org, db):
    [theirs] = await notify(maker, org.rep_b, "别人的")
    response = await client.post(
        f"/api/v1/notifications/{theirs}/read", headers=auth(app, org.rep_a)
    )
    assert response.status_code == 404
    assert (await db.get(Notification, theirs)).read_at is None
    assert (await client.get("/api/v1/notifications", headers=auth(app, org.admin))).json()[
        "items"
    ] == []


async def test_stream_sends_new_notifications(app, client, maker, org):
    await notify(maker, org.rep_a, "旧的")

    async def later():
        await asyncio.sleep(0.5)
        await notify(maker, org.rep_a, "新的")

    response, _ = await asyncio.gather(
        client.get(
            "/api/v1/notifications/stream", params={"max_seconds": 3}, headers=auth(app, org.rep_a)
        ),
        later(),
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [block for block in response.text.split("\n\n") if block.startswith("event:")]
    parsed = [(b.split("\n")[0][7:], json.loads(b.split("\n")[1][6:])) for b in events]
    assert parsed[0] == ("unread", {"count": 1})
    assert [(name, data.get("title")) for name, data in parsed[1:]] == [
        ("notification", "新的"),
        ("unread", None),
    ]
    assert parsed[-1][1] == {"count": 2}


async def test_stream_needs_authentication(client):
    assert (await client.get("/api/v1/notifications/stream")).status_code == 401


async def test_settings_round_trip_and_validation(app, client, org):
    headers = auth(app, org.rep_a)
    default = (await client.get("/api/v1/notification-settings", headers=headers)).json()
    assert default == {
        "push_kinds": {},
        "quiet_hours": None,
        "digest_hour": 8,
        "timezone": "Asia/Shanghai",
    }
    body = {
        "push_kinds": {"digest": False},
        "quiet_hours": {"start": "22:30", "end": "07:00"},
        "digest_hour": 7,
    }
    saved = (await client.put("/api/v1/notification-settings", json=body, headers=headers)).json()
    assert saved == {**body, "timezone": "Asia/Shanghai"}
    for bad in (
        {"push_kinds": {"spam": True}},
        {"quiet_hours": {"start": "25:00", "end": "07:00"}},
        {"digest_hour": 24},
        {"push_kinds": {}, "colour": "red"},
    ):
        assert (
            await client.put("/api/v1/notification-settings", json=bad, headers=headers)
        ).status_code == 422
    assert (await client.get("/api/v1/notification-settings", headers=headers)).json()[
        "digest_hour"
    ] == 7


async def test_push_subscriptions(app, client, org, db, monkeypatch):
    headers = auth(app, org.rep_a)
    key = (await client.get("/api/v1/push/vapid-public-key", headers=headers)).json()["public_key"]
    assert len(key) == 87  # 65-byte uncompressed P-256 point, base64url without padding
    assert (await client.get("/api/v1/push/vapid-public-key", headers=headers)).json()[
        "public_key"
    ] == key
    with PushService().running() as service:
        sub = service.subscriber().subscription
    body = {"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}}
    assert (
        await client.post("/api/v1/push/subscriptions", json=body, headers=headers)
    ).status_code == 201
    assert (
        await client.post("/api/v1/push/subscriptions", json=body, headers=headers)
    ).status_code == 200
    for bad in (
        {"endpoint": sub.endpoint},
        {"endpoint": sub.endpoint, "keys": {"p256dh": "short", "auth": sub.auth}},
        {"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": "A" * 30}},
        {"endpoint": "ftp://push.example", "keys": body["keys"]},
    ):
        assert (
            await client.post("/api/v1/push/subscriptions", json=bad, headers=headers)
        ).status_code == 422
    monkeypatch.setattr(app.state.settings, "push_allow_http", False)
    plain = {**body, "endpoint": "http://push.example/x"}
    assert (
        await client.post("/api/v1/push/subscriptions", json=plain, headers=headers)
    ).status_code == 422
    assert await db.scalar(select(func.count()).select_from(PushSubscription)) == 1
    other = await client.delete(
        "/api/v1/push/subscriptions",
        params={"endpoint": sub.endpoint},
        headers=auth(app, org.rep_b),
    )
    assert other.status_code == 404
    gone = await client.delete(
        "/api/v1/push/subscriptions", params={"endpoint": sub.endpoint}, headers=headers
    )
    assert gone.status_code == 204
    await db.rollback()  # end the earlier read snapshot
    assert await db.scalar(select(func.count()).select_from(PushSubscription)) == 0


async def test_owner_and_team_hear_about_changes_by_others(app, client, maker, org):
    customer = await make_customer(maker, org.rep_a, "被修改的公司", level="C")
    await add_team_member(maker, customer, org.rep_b, "read")
    url = f"/api/v1/customers/{customer.id}"
    edited = await client.patch(
        url, json={"level": "A"}, headers={**auth(app, org.mgr_east), "If-Match": '"1"'}
    )
    assert edited.status_code == 200
    for user in (org.rep_a, org.rep_b):
        [note] = (await client.get("/api/v1/notifications", headers=auth(app, user))).json()[
            "items"
        ]
        assert note["kind"] == "customer_changed" and note["link"] == f"/customers/{customer.id}"
        assert note["data"]["changes"] == {"level": {"before": "C", "after": "A"}}
        assert "level: C → A" in note["body"]
    assert (await client.get("/api/v1/notifications", headers=auth(app, org.mgr_east))).json()[
        "items"
    ] == []
    own = await client.patch(
        url, json={"level": "B"}, headers={**auth(app, org.rep_a), "If-Match": '"2"'}
    )
    assert own.status_code == 200
    assert (
        len(
            (await client.get("/api/v1/notifications", headers=auth(app, org.rep_a))).json()[
                "items"
            ]
        )
        == 1
    )


async def test_today_gathers_the_reps_day(app, client, maker, org):
    now = dt.datetime.now(dt.UTC)
    zone = dt.timezone(dt.timedelta(hours=8))
    local_today = now.astimezone(zone).date()
    end_of_today = dt.datetime.combine(local_today, dt.time(23, 0), tzinfo=zone)
    due = await make_customer(maker, org.rep_a, "今天跟进", next_follow_up_at=end_of_today)
    late = await make_customer(
        maker, org.rep_a, "逾期", next_follow_up_at=now - dt.timedelta(days=3)
    )
    await make_customer(maker, org.rep_a, "下周", next_follow_up_at=now + dt.timedelta(days=7))
    await make_customer(maker, org.rep_b, "别人的", next_follow_up_at=now - dt.timedelta(days=1))
    birthday = local_today + dt.timedelta(days=2)
    person = await make_customer(
        maker, org.rep_a, "张先生", kind="person", birth_date=birthday.replace(year=1985)
    )
    company = await make_customer(maker, org.rep_a, "有联系人")
    await make_contact(maker, company, "李总", birth_date=local_today.replace(year=1970))
    response = await client.get("/api/v1/today", headers=auth(app, org.rep_a))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["date"] == local_today.isoformat() and body["timezone"] == "Asia/Shanghai"
    assert [c["id"] for c in body["due_follow_ups"]] == [due.id]
    assert [c["id"] for c in body["overdue_follow_ups"]] == [late.id]
    assert [(r["name"], r["days_until"]) for r in body["relationship"]] == [
        ("李总", 0),
        ("张先生", 2),
    ]
    assert body["relationship"][1]["customer_id"] == person.id
    assert body["visits"] == [] and body["reclaim_warnings"] == []


async def test_today_finds_anniversaries_in_the_window_only(app, client, maker, org):
    zone = dt.timezone(dt.timedelta(hours=8))
    local_today = dt.datetime.now(dt.UTC).astimezone(zone).date()

    def years_ago(days_ahead: int, years: int) -> dt.date:
        day = local_today + dt.timedelta(days=days_ahead)
        return day.replace(year=day.year - years, day=min(day.day, 28))

    signed_day = years_ago(3, 2)
    signed_at = dt.datetime.combine(signed_day, dt.time(0, 30), tzinfo=zone)  # 16:30 UTC before
    signed = await make_customer(maker, org.rep_a, "签约两年", signed_at=signed_at)
    await make_customer(maker, org.rep_a, "十天后生日", kind="person", birth_date=years_ago(10, 30))
    await make_customer(maker, org.rep_a, "昨天生日", kind="person", birth_date=years_ago(-1, 30))
    response = await client.get("/api/v1/today", headers=auth(app, org.rep_a))
    assert response.status_code == 200, response.text
    expected = (signed_day.replace(year=local_today.year) - local_today).days
    if expected < 0:  # (the 28th stand-in fell before today: a year away)
        expected = None
    got = [(r["kind"], r["customer_id"], r["days_until"]) for r in response.json()["relationship"]]
    assert got == ([("anniversary", signed.id, expected)] if expected is not None else [])


def test_the_window_of_month_days_covers_time_zones_and_leap_days():
    from app.services.today import month_days_near

    near = month_days_near(dt.date(2027, 2, 25), 7)
    assert near[0] == 223 and near[-1] == 306
    assert 229 in near and len(near) == 13  # 12 days and the leap day
    assert 229 not in month_days_near(dt.date(2027, 6, 1), 7)


async def test_vapid_keys_exist_from_the_first_start(app, db):
    from app.models import SystemSetting

    stored = await db.get(SystemSetting, "vapid_private_pem")
    assert stored is not None and "PRIVATE KEY" in stored.value


async def test_on_postgresql_the_reps_dates_are_found_by_the_month_day_indexes(app, maker):
    """The relationship query spells the month and day as the indexes of migration 0017 do, so
    PostgreSQL finds a rep's few customers near the date in them among the rep's thousands."""
    from app.services.today import RELATIONSHIP_CUSTOMERS

    if app.state.engine.dialect.name != "postgresql":
        pytest.skip("the indexes are PostgreSQL's")
    org = await make_org(maker)
    query = RELATIONSHIP_CUSTOMERS.params(user_id=org.rep_a.id, near=[1224, 1225])
    sql = str(query.compile(app.state.engine, compile_kwargs={"literal_binds": True}))
    async with app.state.engine.connect() as connection:  # rolled back
        await connection.execute(
            text(
                "INSERT INTO customers (name, name_normalized, kind, phones, deal_status,"
                " custom_fields, owner_id, birth_date, signed_at)"
                " SELECT 'c' || n, 'c' || n, 'person', '[]', 'none', '{}', :owner,"
                " DATE '1980-01-01' + n, TIMESTAMPTZ '2020-01-01' + n * INTERVAL '1 day'"
                " FROM generate_series(1, 5000) AS n"
            ),
            {"owner": org.rep_a.id},
        )
        await connection.exec_driver_sql("ANALYZE customers")
        plan = "\n".join(row[0] for row in (await connection.exec_driver_sql(f"EXPLAIN {sql}")))
        await connection.rollback()
    assert "ix_customers_owner_birth_date_month_day" in plan, plan
    assert "ix_customers_owner_signed_at_month_day" in plan, plan
