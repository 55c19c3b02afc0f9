"""Visit plans and their reminders (SPEC D2)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from app.models import Reminder, Visit
from tests.factories import auth, make_customer, make_org


@pytest.fixture
async def org(maker):
    return await make_org(maker)


def at(**delta) -> dt.datetime:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(**delta)).replace(microsecond=0)


async def plan(client, app, user, customer, starts, offsets=(1440, 30), **extra):
    return await client.post(
        "/api/v1/visits",
        json={
            "customer_id": customer.id,
            "starts_at": starts.isoformat(),
            "reminder_offsets_minutes": list(offsets),
            **extra,
        },
        headers=auth(app, user),
    )


async def test_planning_creates_a_reminder_per_offset(app, client, maker, org, db):
    customer = await make_customer(maker, org.rep_a, "拜访公司")
    starts = at(days=2)
    response = await plan(client, app, org.rep_a, customer, starts, note="带样品")
    assert response.status_code == 201, response.text
    visit = response.json()
    assert visit["status"] == "planned" and visit["reminder_offsets_minutes"] == [1440, 30]
    due = [dt.datetime.fromisoformat(r["due_at"]) for r in visit["reminders"]]
    assert due == [starts - dt.timedelta(days=1), starts - dt.timedelta(minutes=30)]
    assert response.headers["ETag"] == '"1"'
    reminder = await db.scalar(select(Reminder).order_by(Reminder.due_at))
    assert reminder.user_id == org.rep_a.id and reminder.link == f"/visits/{visit['id']}"
    assert reminder.title == "拜访提醒：拜访公司"


async def test_offsets_already_past_are_skipped(app, client, maker, org):
    customer = await make_customer(maker, org.rep_a, "临时拜访")
    visit = (
        await plan(client, app, org.rep_a, customer, at(minutes=20), offsets=(1440, 30, 10, 0))
    ).json()
    assert len(visit["reminders"]) == 2  # 10 minutes before and at the start


@pytest.mark.parametrize(
    "change",
    [
        {"starts_at": at(hours=-1).isoformat()},
        {"reminder_offsets_minutes": [-5]},
        {"reminder_offsets_minutes": [60 * 24 * 31]},
        {"reminder_offsets_minutes": [1, 2, 3, 4, 5, 6]},
        {"duration_minutes": 1},
        {"starts_at": "2030-01-01T09:00:00"},
    ],
)
async def test_bad_plans_are_refused_and_write_nothing(app, client, maker, org, db, change):
    customer = await make_customer(maker, org.rep_a, "校验")
    body = {"customer_id": customer.id, "starts_at": at(days=1).isoformat(), **change}
    response = await client.post("/api/v1/visits", json=body, headers=auth(app, org.rep_a))
    assert response.status_code == 422, response.text
    assert await db.scalar(select(func.count()).select_from(Visit)) == 0
    assert await db.scalar(select(func.count()).select_from(Reminder)) == 0


async def test_visit_for_a_customer_outside_scope_is_refused(app, client, maker, org, db):
    theirs = await make_customer(maker, org.rep_b, "别人的")
    response = await plan(client, app, org.rep_a, theirs, at(days=1))
    assert response.status_code == 422
    assert await db.scalar(select(func.count()).select_from(Visit)) == 0


async def test_reschedule_moves_pending_reminders(app, client, maker, org, db):
    customer = await make_customer(maker, org.rep_a, "改期")
    visit = (await plan(client, app, org.rep_a, customer, at(days=2))).json()
    later = at(days=5)
    url = f"/api/v1/visits/{visit['id']}/reschedule"
    assert (
        await client.post(url, json={"starts_at": later.isoformat()}, headers=auth(app, org.rep_a))
    ).status_code == 428
    moved = await client.post(
        url,
        json={"starts_at": later.isoformat()},
        headers={**auth(app, org.rep_a), "If-Match": '"1"'},
    )
    assert moved.status_code == 200
    due = [dt.datetime.fromisoformat(r["due_at"]) for r in moved.json()["reminders"]]
    assert due == [later - dt.timedelta(days=1), later - dt.timedelta(minutes=30)]
    states = (await db.scalars(select(Reminder.state).order_by(Reminder.id))).all()
    assert states == ["cancelled", "cancelled", "pending", "pending"]
    stale = await client.post(
        url,
        json={"starts_at": at(days=6).isoformat()},
        headers={**auth(app, org.rep_a), "If-Match": '"1"'},
    )
    assert stale.status_code == 412


async def test_complete_logs_the_follow_up_and_cancels_reminders(app, client, maker, org, db):
    customer = await make_customer(maker, org.rep_a, "完成拜访", lat=31.23, lng=121.47)
    visit = (await plan(client, app, org.rep_a, customer, at(days=1))).json()
    done = await client.post(
        f"/api/v1/visits/{visit['id']}/complete",
        json={"content": "签了意向书", "check_in": {"lat": 31.231, "lng": 121.47}},
        headers={**auth(app, org.rep_a), "If-Match": '"1"'},
    )
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["status"] == "completed" and body["follow_up_id"] and body["reminders"] == []
    follow_up = (
        await client.get(f"/api/v1/follow-ups/{body['follow_up_id']}", headers=auth(app, org.rep_a))
    ).json()
    assert follow_up["type"] == "visit" and follow_up["visit_id"] == visit["id"]
    assert 100 < follow_up["check_in"]["distance_m"] < 125
    again = await client.post(
        f"/api/v1/visits/{visit['id']}/cancel",
        json={},
        headers={**auth(app, org.rep_a), "If-Match": done.headers["ETag"]},
    )
    assert again.status_code == 409


async def test_cancel_cancels_pending_reminders(app, client, maker, org, db):
    customer = await make_customer(maker, org.rep_a, "取消")
    visit = (await plan(client, app, org.rep_a, customer, at(days=1))).json()
    cancelled = await client.post(
        f"/api/v1/visits/{visit['id']}/cancel",
        json={"reason": "客户出差"},
        headers={**auth(app, org.rep_a), "If-Match": '"1"'},
    )
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert set((await db.scalars(select(Reminder.state))).all()) == {"cancelled"}


async def test_reps_see_their_own_visits_and_managers_their_scope(app, client, maker, org):
    a = await make_customer(maker, org.rep_a, "甲")
    d = await make_customer(maker, org.rep_d, "丁")
    va = (await plan(client, app, org.rep_a, a, at(days=1))).json()
    vd = (await plan(client, app, org.rep_d, d, at(days=1))).json()
    listed = lambda user: client.get("/api/v1/visits", headers=auth(app, user))  # noqa: E731
    assert [v["id"] for v in (await listed(org.rep_a)).json()["items"]] == [va["id"]]
    assert [v["id"] for v in (await listed(org.mgr_east)).json()["items"]] == [va["id"]]
    assert {v["id"] for v in (await listed(org.admin)).json()["items"]} == {va["id"], vd["id"]}
    for path in ("", "/reschedule", "/complete", "/cancel"):
        method = "GET" if not path else "POST"
        body = (
            {"starts_at": at(days=3).isoformat()}
            if path == "/reschedule"
            else {"content": "x"}
            if path == "/complete"
            else {}
        )
        r = await client.request(
            method,
            f"/api/v1/visits/{vd['id']}{path}",
            json=body if method == "POST" else None,
            headers={**auth(app, org.rep_a), "If-Match": '"1"'},
        )
        assert r.status_code == 404, path


async def test_visits_page_soonest_first(app, client, maker, org):
    customer = await make_customer(maker, org.rep_a, "分页")
    planned = [
        (await plan(client, app, org.rep_a, customer, at(days=d), offsets=())).json()["id"]
        for d in (3, 1, 2, 5, 4)
    ]
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (
            await client.get("/api/v1/visits", params=params, headers=auth(app, org.rep_a))
        ).json()
        seen += [v["id"] for v in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [planned[i] for i in (1, 2, 0, 4, 3)]
