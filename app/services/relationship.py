"""Generated reminders: relationship dates (D7), the morning digest (D6), stale deals (E5).

Both are generated as reminder rows with a ``dedupe_key`` (unique), so a job that runs twice, or in
two processes, creates each reminder once; the dispatcher then delivers them like any other.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import access
from app.access import FieldLevel
from app.db import dialect_insert, transaction
from app.models import (
    Contact,
    Contract,
    Customer,
    NotificationSettings,
    Opportunity,
    PaymentPlan,
    PipelineStage,
    Reminder,
    User,
    Visit,
)
from app.models.base import utcnow
from app.services.today import next_anniversary, user_zone

REMIND_AT = dt.time(9, 0)  # local time of relationship reminders


async def insert_reminders_once(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    """Insert reminders, skipping any whose ``dedupe_key`` exists already."""
    if not rows:
        return 0
    stmt = dialect_insert(session, Reminder).values(rows)
    result = await session.execute(stmt.on_conflict_do_nothing(index_elements=["dedupe_key"]))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def schedule_relationship_reminders(
    maker: async_sessionmaker[AsyncSession], days_ahead: int, now: dt.datetime | None = None
) -> int:
    """Birthdays of customers and contacts, and signing anniversaries, ``days_ahead`` days early."""
    now = now or utcnow()
    async with transaction(maker) as session:
        owners = {
            uid: user_zone(zone)
            for uid, zone in (await session.execute(select(User.id, User.timezone))).all()
        }
        live = (Customer.deleted_at.is_(None), Customer.owner_id.is_not(None))
        dates: list[tuple[str, Any, int, int | None, str, Any]] = []
        for cid, owner, name, birth, signed in (
            await session.execute(
                select(
                    Customer.id,
                    Customer.owner_id,
                    Customer.name,
                    Customer.birth_date,
                    Customer.signed_at,
                )
                .where(
                    *live, (Customer.birth_date.is_not(None)) | (Customer.signed_at.is_not(None))
                )
                # Reminders are made in id order, whichever index PostgreSQL's plan reads.
                .order_by(Customer.id)
            )
        ).all():
            if birth is not None:
                dates.append(("birthday", owner, cid, None, name, birth))
            if signed is not None and owner is not None:
                local = signed.astimezone(owners[owner]).date()
                dates.append(("anniversary", owner, cid, None, name, local))
        for contact_id, cid, owner, name, birth in (
            await session.execute(
                select(
                    Contact.id,
                    Contact.customer_id,
                    Customer.owner_id,
                    Contact.name,
                    Contact.birth_date,
                )
                .join(Customer, Customer.id == Contact.customer_id)
                .where(*live, Contact.deleted_at.is_(None), Contact.birth_date.is_not(None))
                .order_by(Contact.id)
            )
        ).all():
            dates.append(("birthday", owner, cid, contact_id, name, birth))

        # Each owner is reminded only of what their roles let them read (SPEC J4).
        levels = await access.users_field_levels(session, owners)
        rows = []
        for kind, recipient, customer_id, person_id, name, day in dates:
            if recipient is None or day is None:
                continue
            own = levels.get(recipient, {})
            if kind == "birthday":
                field = "contact.birth_date" if person_id else "birth_date"
                if not access.at_least(own.get(field, FieldLevel.EDIT), FieldLevel.READ):
                    continue
                if person_id:
                    name = access.withhold({"name": name}, own, access.CONTACT_KEYS)["name"]
            zone = owners[recipient]
            today = now.astimezone(zone).date()
            upcoming = next_anniversary(day, today)
            if kind == "anniversary" and upcoming.year == day.year:
                continue  # the signing day itself is no anniversary
            days = (upcoming - today).days
            if days > days_ahead:
                continue
            remind = dt.datetime.combine(
                upcoming - dt.timedelta(days=days_ahead), REMIND_AT, tzinfo=zone
            )
            label = "生日" if kind == "birthday" else "签约周年"
            who = f"contact:{person_id}" if person_id else f"customer:{customer_id}"
            rows.append(
                {
                    "user_id": recipient,
                    "kind": kind,
                    "due_at": max(remind.astimezone(dt.UTC), now),
                    "customer_id": customer_id,
                    "title": f"{name} {label}：{upcoming:%m-%d}",
                    "body": "送上一句问候，维系关系" if days else f"今天是{name}的{label}",
                    "link": f"/customers/{customer_id}",
                    "data": {
                        "customer_id": customer_id,
                        "contact_id": person_id,
                        "date": upcoming.isoformat(),
                    },
                    "dedupe_key": f"{kind}:{who}:{upcoming.year}",
                    "state": "pending",
                    "created_at": now,
                }
            )
        return await insert_reminders_once(session, rows)


async def schedule_digests(
    maker: async_sessionmaker[AsyncSession], now: dt.datetime | None = None
) -> int:
    """A morning summary for every active user whose digest hour has come today (local time)."""
    now = now or utcnow()
    async with transaction(maker) as session:
        configured = set((await session.scalars(select(NotificationSettings.user_id))).all())
        users = (
            await session.execute(
                select(User.id, User.timezone, NotificationSettings.digest_hour)
                .outerjoin(NotificationSettings, NotificationSettings.user_id == User.id)
                .where(User.is_active.is_(True))
            )
        ).all()
        done = set(
            (
                await session.scalars(
                    select(Reminder.dedupe_key).where(
                        Reminder.kind == "digest", Reminder.created_at >= now - dt.timedelta(days=2)
                    )
                )
            ).all()
        )
        rows = []
        for uid, zone_name, digest_hour in users:
            # No settings row means the default hour; a stored NULL means "no digest".
            hour: int | None = 8 if digest_hour is None and uid not in configured else digest_hour
            if hour is None:
                continue
            zone = user_zone(zone_name)
            local = now.astimezone(zone)
            key = f"digest:{uid}:{local.date().isoformat()}"
            if local.hour < hour or key in done:
                continue
            start = dt.datetime.combine(local.date(), dt.time(), tzinfo=zone).astimezone(dt.UTC)
            end = start + dt.timedelta(days=1)
            visits = await session.scalar(
                select(func.count())
                .select_from(Visit)
                .where(
                    Visit.owner_id == uid,
                    Visit.status == "planned",
                    Visit.starts_at >= start,
                    Visit.starts_at < end,
                )
            )
            due = await session.scalar(
                select(func.count())
                .select_from(Customer)
                .where(
                    Customer.owner_id == uid,
                    Customer.deleted_at.is_(None),
                    Customer.next_follow_up_at < end,
                )
            )
            rows.append(
                {
                    "user_id": uid,
                    "kind": "digest",
                    "due_at": now,
                    "title": f"今日简报 {local:%m-%d}",
                    "body": f"今天有 {visits} 个拜访，{due} 位客户待跟进",
                    "link": "/",
                    "data": {
                        "date": local.date().isoformat(),
                        "visits": visits,
                        "due_follow_ups": due,
                    },
                    "dedupe_key": key,
                    "state": "pending",
                    "created_at": now,
                }
            )
        return await insert_reminders_once(session, rows)


async def schedule_stale_opportunity_notices(
    maker: async_sessionmaker[AsyncSession], now: dt.datetime | None = None
) -> int:
    """E5: tell owners about opportunities longer in their stage than its stale threshold — once
    per stage entry (the dedupe key carries the moment the stage was entered)."""
    now = now or utcnow()
    async with transaction(maker) as session:
        rows: list[dict[str, Any]] = []
        stages = (
            await session.scalars(
                select(PipelineStage).where(PipelineStage.stale_days.is_not(None))
            )
        ).all()
        for stage in stages:
            assert stage.stale_days is not None
            overdue = (
                await session.execute(
                    select(
                        Opportunity.id,
                        Opportunity.owner_id,
                        Opportunity.title,
                        Opportunity.stage_entered_at,
                    ).where(
                        Opportunity.stage_id == stage.id,
                        Opportunity.status == "open",
                        Opportunity.deleted_at.is_(None),
                        Opportunity.stage_entered_at < now - dt.timedelta(days=stage.stale_days),
                    )
                )
            ).all()
            for opp_id, owner_id, title, entered in overdue:
                days = (now - entered).days
                rows.append(
                    {
                        "user_id": owner_id,
                        "kind": "stale_opportunity",
                        "due_at": now,
                        "title": f"商机停滞：{title}",
                        "body": f"已在「{stage.name}」{days} 天（阈值 {stage.stale_days} 天）",
                        "link": f"/opportunities/{opp_id}",
                        "data": {
                            "opportunity_id": opp_id,
                            "stage_id": stage.id,
                            "days_in_stage": days,
                        },
                        "dedupe_key": f"stale:{opp_id}:{entered.isoformat()}",
                        "state": "pending",
                        "created_at": now,
                    }
                )
        return await insert_reminders_once(session, rows)


async def mark_overdue_payment_plans(
    maker: async_sessionmaker[AsyncSession], now: dt.datetime | None = None, zone: str | None = None
) -> int:
    """F2: instalments past their due date and not fully paid become overdue; owners hear once.
    Dates are the business's (``KEHU_BUSINESS_TIMEZONE``)."""
    now = now or utcnow()
    today = now.astimezone(user_zone(zone)).date()
    async with transaction(maker) as session:
        overdue = (
            await session.execute(
                update(PaymentPlan)
                .where(
                    PaymentPlan.status.in_(("pending", "partly_paid")),
                    PaymentPlan.due_date < today,
                )
                .values(status="overdue")
                .returning(
                    PaymentPlan.id,
                    PaymentPlan.contract_id,
                    PaymentPlan.amount_cents,
                    PaymentPlan.paid_cents,
                    PaymentPlan.due_date,
                )
                .execution_options(synchronize_session=False)
            )
        ).all()
        if not overdue:
            return 0
        contracts = {
            c.id: c
            for c in (
                await session.scalars(
                    select(Contract).where(Contract.id.in_({o[1] for o in overdue}))
                )
            ).all()
        }
        rows = []
        for plan_id, contract_id, amount, paid, due in overdue:
            contract = contracts[contract_id]
            owed = (amount - paid) / 100
            rows.append(
                {
                    "user_id": contract.owner_id,
                    "kind": "payment_overdue",
                    "due_at": now,
                    "customer_id": contract.customer_id,
                    "title": f"回款逾期：{contract.number}",
                    "body": f"{due:%Y-%m-%d} 到期，尚欠 {owed:.2f} 元",
                    "link": f"/contracts/{contract.id}",
                    "data": {"contract_id": contract.id, "plan_id": plan_id},
                    "dedupe_key": f"overdue:{plan_id}",
                    "state": "pending",
                    "created_at": now,
                }
            )
        await insert_reminders_once(session, rows)
        return len(overdue)


async def contract_expiry(
    maker: async_sessionmaker[AsyncSession],
    days_ahead: int,
    now: dt.datetime | None = None,
    zone: str | None = None,
) -> int:
    """F3: remind owners of contracts ending within ``days_ahead`` days (once per end date), and
    mark active contracts whose end date has passed as expired."""
    now = now or utcnow()
    today = now.astimezone(user_zone(zone)).date()
    async with transaction(maker) as session:
        await session.execute(
            update(Contract)
            .where(Contract.status == "active", Contract.end_date < today)
            .values(status="expired", updated_at=now, version=Contract.version + 1)
        )
        ending = (
            await session.scalars(
                select(Contract).where(
                    Contract.status.in_(("signed", "active")),
                    Contract.end_date >= today,
                    Contract.end_date <= today + dt.timedelta(days=days_ahead),
                )
            )
        ).all()
        rows = [
            {
                "user_id": c.owner_id,
                "kind": "contract_expiring",
                "due_at": now,
                "customer_id": c.customer_id,
                "title": f"合同即将到期：{c.number}",
                "body": f"{c.title} 将于 {c.end_date:%Y-%m-%d} 到期",
                "link": f"/contracts/{c.id}",
                "data": {
                    "contract_id": c.id,
                    "end_date": c.end_date.isoformat() if c.end_date else None,
                },
                "dedupe_key": f"expiry:{c.id}:{c.end_date}",
                "state": "pending",
                "created_at": now,
            }
            for c in ending
        ]
        return await insert_reminders_once(session, rows)
