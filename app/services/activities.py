"""Follow-ups and visit plans (SPEC D1, D2).

Logging a follow-up moves the customer's last/next follow-up times in the same transaction.
A visit keeps one reminder row per offset; rescheduling moves the pending ones, cancelling and
completing cancel them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import access
from app.access import Principal
from app.errors import Conflict, NotFound, ValidationFailed, field_error
from app.models import Contact, Customer, FollowUp, Owner, Reminder, User, Visit
from app.models.base import utcnow
from app.schemas.activity import (
    FollowUpCreate,
    VisitCancel,
    VisitComplete,
    VisitCreate,
    VisitReschedule,
)
from app.services import audit, webhooks
from app.services.customers import haversine_km
from app.services.pagination import fetch_page
from app.services.versions import check_version, flush_versioned

# A follow-up may be logged for the recent past (a rep catching up on the train), not the future.
MAX_BACKDATE = dt.timedelta(days=30)
FUTURE_TOLERANCE = dt.timedelta(minutes=5)


# --- follow-ups --------------------------------------------------------------------------------


async def _contact_of(session: AsyncSession, customer_id: int, contact_id: int | None) -> None:
    if contact_id is None:
        return
    found = await session.scalar(
        select(Contact.id).where(
            Contact.id == contact_id,
            Contact.customer_id == customer_id,
            Contact.deleted_at.is_(None),
        )
    )
    if found is None:
        raise ValidationFailed(errors=[field_error("contact_id", "not a contact of this customer")])


async def log_follow_up(
    session: AsyncSession,
    principal: Principal,
    data: FollowUpCreate,
    *,
    visit_id: int | None = None,
) -> FollowUp:
    """Record an interaction and move the customer's follow-up clock, in one transaction."""
    now = utcnow()
    try:
        customer = await access.get_writable(session, principal, Customer, data.customer_id)
    except NotFound:
        raise ValidationFailed(
            errors=[field_error("customer_id", "no such customer in your data scope")]
        ) from None
    await _contact_of(session, customer.id, data.contact_id)
    occurred = data.occurred_at or now
    if occurred > now + FUTURE_TOLERANCE or occurred < now - MAX_BACKDATE:
        raise ValidationFailed(
            errors=[field_error("occurred_at", "must lie within the last 30 days, not ahead")]
        )
    if data.next_follow_up_at is not None and data.next_follow_up_at <= occurred:
        raise ValidationFailed(
            errors=[field_error("next_follow_up_at", "must come after the follow-up itself")]
        )
    follow_up = FollowUp(
        customer_id=customer.id,
        author_id=principal.user_id,
        contact_id=data.contact_id,
        visit_id=visit_id,
        type=data.type,
        content=data.content,
        occurred_at=occurred,
        next_follow_up_at=data.next_follow_up_at,
        satisfaction=data.satisfaction,
        created_at=now,
    )
    if data.check_in is not None:
        follow_up.check_in_lat = data.check_in.lat
        follow_up.check_in_lng = data.check_in.lng
        follow_up.check_in_accuracy_m = data.check_in.accuracy_m
        follow_up.check_in_address = data.check_in.address
        if customer.lat is not None and customer.lng is not None:
            km = haversine_km((data.check_in.lat, data.check_in.lng), (customer.lat, customer.lng))
            follow_up.distance_m = round(km * 1000, 1)
    session.add(follow_up)
    before = {
        "last_follow_up_at": audit.jsonable(customer.last_follow_up_at),
        "next_follow_up_at": audit.jsonable(customer.next_follow_up_at),
    }
    if customer.last_follow_up_at is None or occurred >= customer.last_follow_up_at:
        customer.last_follow_up_at = occurred
        customer.next_follow_up_at = data.next_follow_up_at
    await session.flush()
    after = {
        "last_follow_up_at": audit.jsonable(customer.last_follow_up_at),
        "next_follow_up_at": audit.jsonable(customer.next_follow_up_at),
    }
    audit.customer_event(
        session,
        principal.user_id,
        customer.id,
        "follow_up_logged",
        {"type": {"before": None, "after": data.type}, **audit.diff(before, after)},
        entity="follow_up",
        entity_id=follow_up.id,
    )
    await flush_versioned(session)
    return follow_up


async def get_follow_up(session: AsyncSession, principal: Principal, follow_up_id: int) -> FollowUp:
    return await access.get_readable(session, principal, FollowUp, follow_up_id)


async def follow_up_views(
    session: AsyncSession, follow_ups: Sequence[FollowUp]
) -> list[dict[str, Any]]:
    """Response dicts for follow-ups, with names joined in two queries for the whole page."""
    if not follow_ups:
        return []
    customer_ids = {f.customer_id for f in follow_ups}
    names = dict(
        (
            await session.execute(
                select(Customer.id, Customer.name).where(Customer.id.in_(customer_ids))
            )
        ).all()
    )
    people = {f.author_id for f in follow_ups}
    authors = dict(
        (await session.execute(select(User.id, User.display_name).where(User.id.in_(people)))).all()
    )
    contact_ids = {f.contact_id for f in follow_ups if f.contact_id is not None}
    contacts = (
        dict(
            (
                await session.execute(
                    select(Contact.id, Contact.name).where(Contact.id.in_(contact_ids))
                )
            ).all()
        )
        if contact_ids
        else {}
    )
    out = []
    for f in follow_ups:
        check_in = None
        if f.check_in_lat is not None and f.check_in_lng is not None:
            check_in = {
                "lat": f.check_in_lat,
                "lng": f.check_in_lng,
                "accuracy_m": f.check_in_accuracy_m,
                "address": f.check_in_address,
                "distance_m": f.distance_m,
            }
        out.append(
            {
                "id": f.id,
                "customer_id": f.customer_id,
                "customer_name": names.get(f.customer_id, ""),
                "type": f.type,
                "content": f.content,
                "contact": (
                    {"id": f.contact_id, "name": contacts.get(f.contact_id, "")}
                    if f.contact_id is not None
                    else None
                ),
                "occurred_at": f.occurred_at,
                "next_follow_up_at": f.next_follow_up_at,
                "check_in": check_in,
                "satisfaction": f.satisfaction,
                "visit_id": f.visit_id,
                "author": {"id": f.author_id, "display_name": authors.get(f.author_id, "")},
                "created_at": f.created_at,
            }
        )
    return out


async def list_follow_ups(
    session: AsyncSession,
    principal: Principal,
    *,
    customer_id: int | None = None,
    author_id: int | None = None,
    type_: str | None = None,
    occurred_from: dt.datetime | None = None,
    occurred_to: dt.datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[FollowUp], str | None]:
    if customer_id is not None:
        await access.get_readable(session, principal, Customer, customer_id)
    conditions: list[ColumnElement[bool]] = [access.readable(principal, FollowUp)]
    if customer_id is not None:
        conditions.append(FollowUp.customer_id == customer_id)
    if author_id is not None:
        conditions.append(FollowUp.author_id == author_id)
    if type_ is not None:
        conditions.append(FollowUp.type == type_)
    if occurred_from is not None:
        conditions.append(FollowUp.occurred_at >= occurred_from)
    if occurred_to is not None:
        conditions.append(FollowUp.occurred_at < occurred_to)
    return await fetch_page(
        session,
        FollowUp,
        conditions,
        FollowUp.occurred_at,
        descending=True,
        cursor=cursor,
        limit=limit,
    )


# --- visits ------------------------------------------------------------------------------------


async def _user_zone(session: AsyncSession, user_id: int) -> ZoneInfo:
    name = await session.scalar(select(User.timezone).where(User.id == user_id))
    try:
        return ZoneInfo(name or "Asia/Shanghai")
    except (KeyError, ValueError):
        return ZoneInfo("Asia/Shanghai")


def _reminder_text(
    customer_name: str, starts_at: dt.datetime, offset: int, zone: ZoneInfo
) -> tuple[str, str]:
    local = starts_at.astimezone(zone)
    if offset == 0:
        when = "现在"
    elif offset % 1440 == 0:
        when = f"{offset // 1440} 天后"
    elif offset % 60 == 0:
        when = f"{offset // 60} 小时后"
    else:
        when = f"{offset} 分钟后"
    return f"拜访提醒：{customer_name}", f"{when}（{local:%m-%d %H:%M}）拜访 {customer_name}"


async def _schedule_reminders(
    session: AsyncSession, visit: Visit, customer_name: str, now: dt.datetime
) -> None:
    """Create a pending reminder per offset that still lies ahead."""
    zone = await _user_zone(session, visit.owner_id)
    for offset in visit.reminder_offsets_minutes:
        due = visit.starts_at - dt.timedelta(minutes=offset)
        if due < now:
            continue
        title, body = _reminder_text(customer_name, visit.starts_at, offset, zone)
        session.add(
            Reminder(
                user_id=visit.owner_id,
                kind="visit_reminder",
                due_at=due,
                visit_id=visit.id,
                customer_id=visit.customer_id,
                offset_minutes=offset,
                title=title,
                body=body,
                link=f"/visits/{visit.id}",
                data={"visit_id": visit.id, "customer_id": visit.customer_id},
                created_at=now,
            )
        )


async def _cancel_pending_reminders(session: AsyncSession, visit_id: int, now: dt.datetime) -> None:
    await session.execute(
        update(Reminder)
        .where(Reminder.visit_id == visit_id, Reminder.state == "pending")
        .values(state="cancelled", processed_at=now)
    )


async def plan_visit(session: AsyncSession, principal: Principal, data: VisitCreate) -> Visit:
    now = utcnow()
    try:
        customer = await access.get_writable(session, principal, Customer, data.customer_id)
    except NotFound:
        raise ValidationFailed(
            errors=[field_error("customer_id", "no such customer in your data scope")]
        ) from None
    if data.starts_at <= now:
        raise ValidationFailed(
            errors=[field_error("starts_at", "a visit is planned for the future")]
        )
    visit = Visit(
        customer_id=customer.id,
        owner_id=principal.user_id,
        starts_at=data.starts_at,
        duration_minutes=data.duration_minutes,
        note=data.note,
        status="planned",
        reminder_offsets_minutes=data.reminder_offsets_minutes,
    )
    session.add(visit)
    await session.flush()
    await _schedule_reminders(session, visit, customer.name, now)
    audit.customer_event(
        session,
        principal.user_id,
        customer.id,
        "visit_planned",
        {"starts_at": {"before": None, "after": audit.jsonable(visit.starts_at)}},
        entity="visit",
        entity_id=visit.id,
    )
    await session.flush()
    return visit


def _must_be_planned(visit: Visit) -> None:
    if visit.status != "planned":
        raise Conflict(f"the visit is {visit.status}; only planned visits change")


async def reschedule_visit(
    session: AsyncSession, principal: Principal, visit_id: int, version: int, data: VisitReschedule
) -> Visit:
    now = utcnow()
    visit = await access.get_writable(session, principal, Visit, visit_id)
    check_version(visit, version)
    _must_be_planned(visit)
    if data.starts_at <= now:
        raise ValidationFailed(
            errors=[field_error("starts_at", "a visit is planned for the future")]
        )
    before = audit.jsonable(visit.starts_at)
    visit.starts_at = data.starts_at
    if data.duration_minutes is not None:
        visit.duration_minutes = data.duration_minutes
    if data.reminder_offsets_minutes is not None:
        visit.reminder_offsets_minutes = data.reminder_offsets_minutes
    # Pending reminders move with the visit: cancel them and plan afresh from the offsets.
    await _cancel_pending_reminders(session, visit.id, now)
    name = await session.scalar(select(Customer.name).where(Customer.id == visit.customer_id))
    await _schedule_reminders(session, visit, name or "", now)
    audit.customer_event(
        session,
        principal.user_id,
        visit.customer_id,
        "visit_rescheduled",
        {"starts_at": {"before": before, "after": audit.jsonable(visit.starts_at)}},
        entity="visit",
        entity_id=visit.id,
    )
    await flush_versioned(session)
    return visit


async def complete_visit(
    session: AsyncSession, principal: Principal, visit_id: int, version: int, data: VisitComplete
) -> Visit:
    now = utcnow()
    visit = await access.get_writable(session, principal, Visit, visit_id)
    check_version(visit, version)
    _must_be_planned(visit)
    follow_up = await log_follow_up(
        session,
        principal,
        FollowUpCreate(
            customer_id=visit.customer_id,
            type="visit",
            content=data.content,
            contact_id=data.contact_id,
            next_follow_up_at=data.next_follow_up_at,
            check_in=data.check_in,
        ),
        visit_id=visit.id,
    )
    visit.status = "completed"
    visit.completed_at = now
    visit.follow_up_id = follow_up.id
    webhooks.emit_one(
        session,
        "visit.completed",
        {
            "customer_id": visit.customer_id,
            "visit_id": visit.id,
            "follow_up_id": follow_up.id,
            "actor_id": principal.user_id,
        },
    )
    await _cancel_pending_reminders(session, visit.id, now)
    await flush_versioned(session)
    return visit


async def cancel_visit(
    session: AsyncSession, principal: Principal, visit_id: int, version: int, data: VisitCancel
) -> Visit:
    now = utcnow()
    visit = await access.get_writable(session, principal, Visit, visit_id)
    check_version(visit, version)
    _must_be_planned(visit)
    visit.status = "cancelled"
    visit.cancelled_at = now
    visit.cancel_reason = data.reason
    await _cancel_pending_reminders(session, visit.id, now)
    audit.customer_event(
        session,
        principal.user_id,
        visit.customer_id,
        "visit_cancelled",
        {"reason": {"before": None, "after": data.reason}},
        entity="visit",
        entity_id=visit.id,
    )
    await flush_versioned(session)
    return visit


async def get_visit(session: AsyncSession, principal: Principal, visit_id: int) -> Visit:
    return await access.get_readable(session, principal, Visit, visit_id)


async def list_visits(
    session: AsyncSession,
    principal: Principal,
    *,
    starts_from: dt.datetime | None = None,
    starts_to: dt.datetime | None = None,
    status: str | None = None,
    owner_id: int | None = None,
    customer_id: int | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[Visit], str | None]:
    conditions: list[ColumnElement[bool]] = [access.readable(principal, Visit)]
    for column, value in (
        (Visit.status, status),
        (Visit.owner_id, owner_id),
        (Visit.customer_id, customer_id),
    ):
        if value is not None:
            conditions.append(column == value)
    if starts_from is not None:
        conditions.append(Visit.starts_at >= starts_from)
    if starts_to is not None:
        conditions.append(Visit.starts_at < starts_to)
    return await fetch_page(
        session, Visit, conditions, Visit.starts_at, descending=False, cursor=cursor, limit=limit
    )


async def visit_views(session: AsyncSession, visits: Sequence[Visit]) -> list[dict[str, Any]]:
    """Response dicts for visits: customer and owner names and reminders, batched."""
    if not visits:
        return []
    ids = [v.id for v in visits]
    names = {
        vid: (customer_name, owner_name)
        for vid, customer_name, owner_name in (
            await session.execute(
                select(Visit.id, Customer.name, Owner.display_name)
                .join(Customer, Customer.id == Visit.customer_id)
                .join(Owner, Owner.id == Visit.owner_id)
                .where(Visit.id.in_(ids))
            )
        ).all()
    }
    reminders: dict[int, list[dict[str, Any]]] = {vid: [] for vid in ids}
    for r in (
        await session.scalars(
            select(Reminder)
            .where(Reminder.visit_id.in_(ids), Reminder.state != "cancelled")
            .order_by(Reminder.due_at)
        )
    ).all():
        assert r.visit_id is not None
        reminders[r.visit_id].append({"id": r.id, "due_at": r.due_at, "state": r.state})
    out = []
    for v in visits:
        customer_name, owner_name = names[v.id]
        out.append(
            {
                **{
                    k: getattr(v, k)
                    for k in (
                        "id",
                        "customer_id",
                        "starts_at",
                        "duration_minutes",
                        "note",
                        "status",
                        "reminder_offsets_minutes",
                        "follow_up_id",
                        "completed_at",
                        "cancelled_at",
                        "version",
                        "created_at",
                        "updated_at",
                    )
                },
                "customer_name": customer_name,
                "owner": {"id": v.owner_id, "display_name": owner_name},
                "reminders": reminders[v.id],
            }
        )
    return out
