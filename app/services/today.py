"""A rep's day in one call (SPEC D5): visits, follow-ups due and overdue, relationship dates."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BindParameter, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import access
from app.access import Principal
from app.config import get_settings
from app.models import Contact, Contract, Customer, Department, Owner, PaymentPlan, User, Visit
from app.models.base import utcnow
from app.models.sql import month_day
from app.schemas.opportunity import from_cents
from app.services import pools
from app.services.activities import visit_views

RELATIONSHIP_DAYS_AHEAD = 7
LIST_LIMIT = 50


def user_zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "Asia/Shanghai")
    except (KeyError, ValueError):
        return ZoneInfo("Asia/Shanghai")


def next_anniversary(day: dt.date, today: dt.date) -> dt.date:
    """The next date (today or later) with ``day``'s month and day; 29 Feb falls on 28 Feb."""
    for year in (today.year, today.year + 1):
        try:
            candidate = day.replace(year=year)
        except ValueError:
            candidate = dt.date(year, 2, 28)
        if candidate >= today:
            return candidate
    raise AssertionError("unreachable")


def month_days_near(today: dt.date, ahead: int) -> list[int]:
    """``month * 100 + day`` of the days from two before ``today`` to two after ``today + ahead``
    (29 Feb with 28 Feb): the dates whose anniversary may fall in the window, whatever the time
    zones of the rep and of the UTC dates compared (they differ by two days at most). The exact
    window is ``next_anniversary``'s, in Python, on the few rows these select."""
    found: list[int] = []
    for offset in range(-2, ahead + 3):
        day = today + dt.timedelta(days=offset)
        found.append(day.month * 100 + day.day)
        if (day.month, day.day) == (2, 28):
            found.append(229)
    return found


# The day's statements, built once (building them was a fifth of a request's time); the caller,
# the day's bounds and the month-days near it are bound per request.
_USER: BindParameter[int] = bindparam("user_id")
_MINE = (Customer.owner_id == _USER, Customer.deleted_at.is_(None))
_TIMEZONE = select(User.timezone).where(User.id == _USER)
_VISITS = (
    select(Visit)
    .where(
        Visit.owner_id == _USER,
        Visit.starts_at >= bindparam("start"),
        Visit.starts_at < bindparam("end"),
        Visit.status != "cancelled",
    )
    .order_by(Visit.starts_at)
)
_BRIEF = select(
    Customer.id,
    Customer.name,
    Customer.level,
    Customer.city,
    Customer.last_follow_up_at,
    Customer.next_follow_up_at,
).order_by(Customer.next_follow_up_at)
_DUE = _BRIEF.where(
    *_MINE,
    Customer.next_follow_up_at >= bindparam("start"),
    Customer.next_follow_up_at < bindparam("end"),
).limit(LIST_LIMIT)
_OVERDUE = _BRIEF.where(*_MINE, Customer.next_follow_up_at < bindparam("start")).limit(LIST_LIMIT)
# A rep owns thousands of customers: only those whose dates fall near the window come back,
# found on PostgreSQL by the indexes on (owner, month and day) (migration 0017).
_NEAR: BindParameter[list[int]] = bindparam("near", expanding=True)
RELATIONSHIP_CUSTOMERS = select(
    Customer.id, Customer.name, Customer.birth_date, Customer.signed_at
).where(
    *_MINE,
    month_day(Customer.birth_date).in_(_NEAR) | month_day(Customer.signed_at, utc=True).in_(_NEAR),
)
_RELATIONSHIP_CONTACTS = (
    select(Contact.id, Contact.customer_id, Contact.name, Contact.birth_date)
    .join(Customer, Customer.id == Contact.customer_id)
    .where(*_MINE, Contact.deleted_at.is_(None), month_day(Contact.birth_date).in_(_NEAR))
)


async def today(
    session: AsyncSession, principal: Principal, now: dt.datetime | None = None
) -> dict[str, Any]:
    now = now or utcnow()
    zone = user_zone(await session.scalar(_TIMEZONE, {"user_id": principal.user_id}))
    local_today = now.astimezone(zone).date()
    start = dt.datetime.combine(local_today, dt.time(), tzinfo=zone).astimezone(dt.UTC)
    day = {"user_id": principal.user_id, "start": start, "end": start + dt.timedelta(days=1)}
    visits = list((await session.scalars(_VISITS, day)).all())
    due = (await session.execute(_DUE, day)).mappings().all()
    overdue = (await session.execute(_OVERDUE, day)).mappings().all()

    relationship: list[dict[str, Any]] = []

    def readable(name: str) -> bool:
        return access.at_least(principal.field_level(name), access.FieldLevel.READ)

    def consider(
        kind: str, customer_id: int, contact_id: int | None, name: str, day: dt.date
    ) -> None:
        upcoming = next_anniversary(day, local_today)
        days = (upcoming - local_today).days
        if days <= RELATIONSHIP_DAYS_AHEAD:
            relationship.append(
                {
                    "kind": kind,
                    "customer_id": customer_id,
                    "contact_id": contact_id,
                    "name": name,
                    "date": upcoming,
                    "days_until": days,
                }
            )

    near = {
        "user_id": principal.user_id,
        "near": month_days_near(local_today, RELATIONSHIP_DAYS_AHEAD),
    }
    for cid, name, birth, signed in (await session.execute(RELATIONSHIP_CUSTOMERS, near)).all():
        # Birth dates the caller's roles withhold give no reminder (SPEC J4; owned customers
        # sit in no pool).
        if birth is not None and readable("birth_date"):
            consider("birthday", cid, None, name, birth)
        if signed is not None:
            consider("anniversary", cid, None, name, signed.astimezone(zone).date())
    for contact_id, cid, name, birth in (await session.execute(_RELATIONSHIP_CONTACTS, near)).all():
        if birth is not None and readable("contact.birth_date"):
            shown = access.withhold({"name": name}, principal.field_levels, access.CONTACT_KEYS)
            consider("birthday", cid, contact_id, shown["name"], birth)
    relationship.sort(key=lambda r: (r["days_until"], r["name"]))

    contracts = await contracts_today(session, principal, local_today)
    return {
        **contracts,
        "date": local_today,
        "timezone": zone.key,
        "visits": await visit_views(session, visits),
        "due_follow_ups": [dict(c) for c in due],
        "overdue_follow_ups": [dict(c) for c in overdue],
        "relationship": relationship[:LIST_LIMIT],
        "reclaim_warnings": await pools.reclaim_warnings_for(session, principal, now),
    }


_ENDING_CONTRACTS = (
    select(Contract, Customer.name)
    .join(Customer, Customer.id == Contract.customer_id)
    .where(
        Contract.owner_id == _USER,
        Contract.status.in_(("signed", "active")),
        Contract.end_date >= bindparam("today"),
        Contract.end_date <= bindparam("until"),
    )
    .order_by(Contract.end_date)
    .limit(LIST_LIMIT)
)
_OVERDUE_PAYMENTS = (
    select(PaymentPlan, Contract.number, Customer.name)
    .join(Contract, Contract.id == PaymentPlan.contract_id)
    .join(Customer, Customer.id == Contract.customer_id)
    .where(
        Contract.owner_id == _USER,
        PaymentPlan.status.in_(("pending", "partly_paid", "overdue")),
        PaymentPlan.due_date < bindparam("today"),
    )
    .order_by(PaymentPlan.due_date)
    .limit(LIST_LIMIT)
)


async def contracts_today(
    session: AsyncSession, principal: Principal, today: dt.date
) -> dict[str, Any]:
    """Contracts ending soon, overdue instalments of the caller's contracts, and approvals due."""
    ahead = get_settings().contract_expiry_days_ahead
    days = {
        "user_id": principal.user_id,
        "today": today,
        "until": today + dt.timedelta(days=ahead),
    }
    ending = (await session.execute(_ENDING_CONTRACTS, days)).all()
    overdue = (await session.execute(_OVERDUE_PAYMENTS, days)).all()
    waiting = (
        await session.execute(
            select(Contract, Customer.name, Owner.display_name, Department.manager_id)
            .join(Customer, Customer.id == Contract.customer_id)
            .join(Owner, Owner.id == Contract.owner_id)
            .outerjoin(Department, Department.id == Owner.department_id)
            .where(
                Contract.status == "pending_approval",
                Contract.owner_id != principal.user_id,
                access.readable(principal, Contract),
            )
            .order_by(Contract.submitted_at)
            .limit(LIST_LIMIT)
        )
    ).all()
    approver = principal.can("contract.approve")
    return {
        "expiring_contracts": [
            {
                "id": c.id,
                "number": c.number,
                "title": c.title,
                "customer_id": c.customer_id,
                "customer_name": name,
                "end_date": c.end_date,
                "days_left": (c.end_date - today).days,
            }
            for c, name in ending
            if c.end_date is not None
        ],
        "overdue_payments": [
            {
                "plan_id": p.id,
                "contract_id": p.contract_id,
                "number": number,
                "customer_name": name,
                "due_date": p.due_date,
                "outstanding": from_cents(p.amount_cents - p.paid_cents),
            }
            for p, number, name in overdue
        ],
        "approvals": [
            {
                "contract_id": c.id,
                "number": c.number,
                "title": c.title,
                "customer_name": name,
                "owner_name": owner_name,
                "amount": from_cents(c.amount_cents),
                "submitted_at": c.submitted_at,
            }
            for c, name, owner_name, manager_id in waiting
            if approver or manager_id == principal.user_id
        ],
    }
