"""The reclaim job and its warnings (C2, C3): rules, clock, locks, idempotence, rollback."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from app.models import AuditEvent, Customer, Notification, OwnershipEvent, WebhookEvent
from app.models.base import utcnow
from app.services import pools
from tests.factories import auth, make_customer
from tests.pools.conftest import make_pool

DAY = dt.timedelta(days=1)


async def owned_by(maker, customer_id):
    async with maker() as session:
        row = await session.get(Customer, customer_id)
        assert row is not None
        return row


async def test_neglected_customer_goes_to_the_pool_with_reason(app, client, maker, org):
    pool = await make_pool(client, app, org)
    now = utcnow()
    stale = await make_customer(maker, org.rep_a, owner_assigned_at=now - 40 * DAY)
    fresh = await make_customer(
        maker, org.rep_a, owner_assigned_at=now - 40 * DAY, last_follow_up_at=now - 5 * DAY
    )
    # Received recently (e.g. transferred): the clock restarts then, whatever the follow-ups.
    received = await make_customer(
        maker, org.rep_a, owner_assigned_at=now - 2 * DAY, last_follow_up_at=now - 90 * DAY
    )
    outsider = await make_customer(maker, org.rep_d, owner_assigned_at=now - 400 * DAY)
    assert await pools.reclaim_neglected_customers(maker, now=now) == 1
    row = await owned_by(maker, stale.id)
    assert (row.owner_id, row.pool_id, row.previous_owner_id) == (None, pool["id"], org.rep_a.id)
    assert row.pool_reason == "no follow-up for 30 days"
    for other in (fresh, received):
        assert (await owned_by(maker, other.id)).owner_id == org.rep_a.id
    assert (await owned_by(maker, outsider.id)).owner_id == org.rep_d.id  # not a member
    async with maker() as session:
        event = await session.scalar(
            select(OwnershipEvent).where(OwnershipEvent.customer_id == stale.id)
        )
        assert event is not None
        assert (event.action, event.from_owner_id, event.reason) == (
            "reclaimed",
            org.rep_a.id,
            "no follow-up for 30 days",
        )
        audit = await session.scalar(
            select(AuditEvent).where(
                AuditEvent.customer_id == stale.id, AuditEvent.action == "reclaimed"
            )
        )
        assert audit is not None and audit.changes["reason"]["after"] == "no follow-up for 30 days"
        note = await session.scalar(
            select(Notification).where(Notification.user_id == org.rep_a.id)
        )
        assert note is not None and note.kind == "customers_reclaimed"
        # Integrations hear of it (webhook outbox), on either database's path.
        [hook] = (
            await session.scalars(
                select(WebhookEvent).where(WebhookEvent.type == "customer.reclaimed")
            )
        ).all()
    assert hook.data == {
        "customer_id": stale.id,
        "action": "reclaimed",
        "from_owner_id": org.rep_a.id,
        "to_owner_id": None,
        "pool_id": pool["id"],
        "actor_id": None,
    }
    assert len(hook.event_id) == 36 and hook.dispatched is False


async def test_running_twice_changes_nothing_the_second_time(app, client, maker, org):
    await make_pool(client, app, org)
    now = utcnow()
    for _ in range(3):
        await make_customer(maker, org.rep_b, owner_assigned_at=now - 31 * DAY)
    assert await pools.reclaim_neglected_customers(maker, now=now, batch_size=2) == 3
    assert await pools.reclaim_neglected_customers(maker, now=now) == 0
    async with maker() as session:
        events = (await session.scalars(select(OwnershipEvent))).all()
    assert len(events) == 3


async def test_days_per_level_and_locked_customers(app, client, maker, org):
    rules = [{"kind": "no_follow_up", "days": 30, "level_days": {"A": 60}}]
    await make_pool(client, app, org, rules=rules)
    now = utcnow()
    level_a = await make_customer(maker, org.rep_a, level="A", owner_assigned_at=now - 45 * DAY)
    level_b = await make_customer(maker, org.rep_a, level="B", owner_assigned_at=now - 45 * DAY)
    locked = await make_customer(
        maker, org.rep_a, owner_assigned_at=now - 400 * DAY, locked_at=now - 400 * DAY
    )
    assert await pools.reclaim_neglected_customers(maker, now=now) == 1
    assert (await owned_by(maker, level_a.id)).owner_id == org.rep_a.id
    assert (await owned_by(maker, level_b.id)).owner_id is None
    assert (await owned_by(maker, locked.id)).owner_id == org.rep_a.id


async def test_signed_customers_can_be_excluded(app, client, maker, org):
    await make_pool(client, app, org, exclude_signed=True)
    now = utcnow()
    signed = await make_customer(
        maker, org.rep_a, owner_assigned_at=now - 100 * DAY, deal_status="signed", signed_at=now
    )
    assert await pools.reclaim_neglected_customers(maker, now=now) == 0
    assert (await owned_by(maker, signed.id)).owner_id == org.rep_a.id


async def test_no_deal_rule_counts_from_the_last_signing(app, client, maker, org):
    await make_pool(client, app, org, rules=[{"kind": "no_deal", "days": 90}])
    now = utcnow()
    old_deal = await make_customer(
        maker,
        org.rep_a,
        owner_assigned_at=now - 400 * DAY,
        deal_status="signed",
        signed_at=now - 100 * DAY,
    )
    recent = await make_customer(
        maker,
        org.rep_a,
        owner_assigned_at=now - 400 * DAY,
        deal_status="signed",
        signed_at=now - 10 * DAY,
    )
    assert await pools.reclaim_neglected_customers(maker, now=now) == 1
    assert (await owned_by(maker, old_deal.id)).pool_reason == "no deal for 90 days"
    assert (await owned_by(maker, recent.id)).owner_id == org.rep_a.id


FAIL_TIMELINE = {
    "sqlite": [
        "CREATE TRIGGER fail_timeline BEFORE INSERT ON audit_events "
        "BEGIN SELECT RAISE(ABORT, 'timeline store down'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION fail_timeline() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'timeline store down'; END $$",
        "CREATE TRIGGER fail_timeline BEFORE INSERT ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION fail_timeline()",
    ],
}
HEAL_TIMELINE = {
    "sqlite": ["DROP TRIGGER fail_timeline"],
    "postgresql": [
        "DROP TRIGGER fail_timeline ON audit_events",
        "DROP FUNCTION fail_timeline()",
    ],
}


async def _run_sql(maker, statements):
    async with maker() as session, session.begin():
        for statement in statements:
            await session.execute(text(statement))


async def test_a_failure_rolls_back_the_whole_batch(app, client, maker, org):
    """The timeline insert (the batch's last write) fails: customers and history roll back."""
    await make_pool(client, app, org)
    now = utcnow()
    customers = [
        await make_customer(maker, org.rep_a, owner_assigned_at=now - 60 * DAY) for _ in range(3)
    ]
    dialect = app.state.engine.dialect.name
    await _run_sql(maker, FAIL_TIMELINE[dialect])
    try:
        with pytest.raises(DBAPIError):
            await pools.reclaim_neglected_customers(maker, now=now)
    finally:
        await _run_sql(maker, HEAL_TIMELINE[dialect])
    for c in customers:
        assert (await owned_by(maker, c.id)).owner_id == org.rep_a.id
    async with maker() as session:
        assert (await session.scalars(select(OwnershipEvent))).all() == []
        assert (await session.scalars(select(Notification))).all() == []
    assert await pools.reclaim_neglected_customers(maker, now=now) == 3


async def test_owners_hear_once_per_run_whatever_the_batches(app, client, maker, org):
    await make_pool(client, app, org)
    now = utcnow()
    for _ in range(5):
        await make_customer(maker, org.rep_a, owner_assigned_at=now - 60 * DAY)
    assert await pools.reclaim_neglected_customers(maker, now=now, batch_size=2) == 5
    async with maker() as session:
        notes = (await session.scalars(select(Notification))).all()
    assert [(n.user_id, n.title) for n in notes] == [
        (org.rep_a.id, "5 个客户已被收回公海「East pool」")
    ]
    assert len(notes[0].data["customer_ids"]) == 5


async def test_follow_up_after_selection_keeps_the_customer(app, client, maker, org):
    """The batch UPDATE re-checks the rules: a follow-up logged meanwhile wins."""
    await make_pool(client, app, org)
    now = utcnow()
    customer = await make_customer(maker, org.rep_a, owner_assigned_at=now - 60 * DAY)
    async with maker() as session, session.begin():
        row = await session.get(Customer, customer.id)
        assert row is not None
        row.last_follow_up_at = now - DAY
    rules = (await _rule_sets(maker))[0]
    async with maker() as session, session.begin():
        assert await pools._reclaim_batch(session, rules, [customer.id], now) == {}


async def _rule_sets(maker):
    async with maker() as session:
        return await pools.rule_sets(session)


async def test_owner_is_warned_once_per_period_and_sees_days_left(app, client, maker, org):
    await make_pool(client, app, org, warning_days=3)
    now = utcnow()
    soon = await make_customer(maker, org.rep_a, "快到期客户", owner_assigned_at=now - 28 * DAY)
    await make_customer(maker, org.rep_a, owner_assigned_at=now - 10 * DAY)  # not yet
    assert await pools.warn_of_reclaims(maker, now=now) == 1
    assert await pools.warn_of_reclaims(maker, now=now) == 0
    async with maker() as session:
        notes = (
            await session.scalars(
                select(Notification).where(Notification.kind == "reclaim_warning")
            )
        ).all()
    assert len(notes) == 1 and notes[0].user_id == org.rep_a.id
    assert notes[0].title == "1 个客户将在 2 天后进入公海"
    today = (await client.get("/api/v1/today", headers=auth(app, org.rep_a))).json()
    assert [(w["customer_id"], w["days_left"]) for w in today["reclaim_warnings"]] == [(soon.id, 2)]
    # A follow-up starts a new period; when it runs low again, a new warning goes out.
    async with maker() as session, session.begin():
        row = await session.get(Customer, soon.id)
        assert row is not None
        row.last_follow_up_at = now
    later = now + 28 * DAY
    assert await pools.warn_of_reclaims(maker, now=later) == 1
