"""The dashboard brief: period figures against the previous period, within the caller's scope
(SPEC G1). Each metric is defined once here and documented in the API.

Periods are calendar days, ISO weeks, months or quarters in the caller's time zone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, false, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app import access
from app.access import Principal
from app.errors import NotFound, ValidationFailed, field_error
from app.models import (
    Contract,
    Customer,
    Department,
    FollowUp,
    Opportunity,
    Order,
    Payment,
    Target,
    User,
)
from app.models.base import utcnow
from app.schemas.opportunity import from_cents
from app.services.today import user_zone

PERIODS = ("day", "week", "month", "quarter")


def period_bounds(kind: str, day: dt.date) -> tuple[dt.date, dt.date]:
    """[first day, first day of the next period) containing ``day``."""
    if kind == "day":
        return day, day + dt.timedelta(days=1)
    if kind == "week":
        start = day - dt.timedelta(days=day.weekday())
        return start, start + dt.timedelta(days=7)
    if kind == "month":
        start = day.replace(day=1)
        return start, (start + dt.timedelta(days=32)).replace(day=1)
    if kind == "quarter":
        start = day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
        end = start
        for _ in range(3):
            end = (end + dt.timedelta(days=32)).replace(day=1)
        return start, end
    raise ValidationFailed(
        errors=[field_error("period", f"one of {', '.join(PERIODS)}", where="query")]
    )


Window = tuple[dt.datetime, dt.datetime]
Metric = Callable[
    [AsyncSession, Principal, Window, dt.date, dt.date], Awaitable[int | Decimal | float | None]
]


async def _count(session: AsyncSession, stmt: Select[Any]) -> int:
    return int(await session.scalar(stmt) or 0)


async def new_customers(s: AsyncSession, p: Principal, w: Window, *_: dt.date) -> int:
    """Customers created in the period (that you can see)."""
    return await _count(
        s,
        select(func.count())
        .select_from(Customer)
        .where(
            Customer.deleted_at.is_(None),
            access.readable(p, Customer),
            Customer.created_at >= w[0],
            Customer.created_at < w[1],
        ),
    )


def _follow_ups(p: Principal, w: Window, *extra: ColumnElement[bool]) -> Select[Any]:
    return (
        select(func.count())
        .select_from(FollowUp)
        .where(
            access.readable(p, FollowUp),
            FollowUp.occurred_at >= w[0],
            FollowUp.occurred_at < w[1],
            *extra,
        )
    )


async def follow_ups(s: AsyncSession, p: Principal, w: Window, *_: dt.date) -> int:
    """Follow-ups of any type that took place in the period."""
    return await _count(s, _follow_ups(p, w))


async def visits(s: AsyncSession, p: Principal, w: Window, *_: dt.date) -> int:
    """Visits that took place in the period (follow-ups of type visit)."""
    return await _count(s, _follow_ups(p, w, FollowUp.type == "visit"))


async def new_opportunities(s: AsyncSession, p: Principal, w: Window, *_: dt.date) -> int:
    """Opportunities opened in the period."""
    return await _count(
        s,
        select(func.count())
        .select_from(Opportunity)
        .where(
            Opportunity.deleted_at.is_(None),
            access.readable(p, Opportunity),
            Opportunity.created_at >= w[0],
            Opportunity.created_at < w[1],
        ),
    )


async def won_amount(s: AsyncSession, p: Principal, w: Window, *_: dt.date) -> Decimal:
    """Amount of the opportunities won in the period."""
    cents = await s.scalar(
        select(func.coalesce(func.sum(Opportunity.amount_cents), 0)).where(
            Opportunity.deleted_at.is_(None),
            access.readable(p, Opportunity),
            Opportunity.status == "won",
            Opportunity.closed_at >= w[0],
            Opportunity.closed_at < w[1],
        )
    )
    return from_cents(int(cents or 0))


async def contracts_signed(s: AsyncSession, p: Principal, w: Window, *_: dt.date) -> int:
    """Contracts signed in the period."""
    return await _count(
        s,
        select(func.count())
        .select_from(Contract)
        .where(access.readable(p, Contract), Contract.signed_at >= w[0], Contract.signed_at < w[1]),
    )


async def payments_received(
    s: AsyncSession, p: Principal, _w: Window, first: dt.date, after: dt.date
) -> Decimal:
    """Money received in the period against contracts you can see."""
    cents = await s.scalar(
        select(func.coalesce(func.sum(Payment.amount_cents), 0)).where(
            Payment.contract_id.in_(select(Contract.id).where(access.readable(p, Contract))),
            Payment.received_on >= first,
            Payment.received_on < after,
        )
    )
    return from_cents(int(cents or 0))


async def conversion_rate(s: AsyncSession, p: Principal, w: Window, *_: dt.date) -> float | None:
    """Of the customers created in the period, the share that had signed by its end."""
    created = [
        Customer.deleted_at.is_(None),
        access.readable(p, Customer),
        Customer.created_at >= w[0],
        Customer.created_at < w[1],
    ]
    total = await _count(s, select(func.count()).select_from(Customer).where(*created))
    signed = await _count(
        s,
        select(func.count())
        .select_from(Customer)
        .where(*created, Customer.signed_at.is_not(None), Customer.signed_at < w[1]),
    )
    return round(signed / total, 4) if total else None


async def retention_rate(s: AsyncSession, p: Principal, w: Window, *_: dt.date) -> float | None:
    """Of the customers who bought in the previous period, the share who bought again in this."""
    length = w[1] - w[0]
    visible = Order.customer_id.in_(select(Customer.id).where(access.readable(p, Customer)))
    before = select(Order.customer_id).where(
        visible, Order.ordered_at >= w[0] - length, Order.ordered_at < w[0]
    )
    earlier = await _count(
        s,
        select(func.count(func.distinct(Order.customer_id))).where(
            visible, Order.ordered_at >= w[0] - length, Order.ordered_at < w[0]
        ),
    )
    again = await _count(
        s,
        select(func.count(func.distinct(Order.customer_id))).where(
            visible,
            Order.ordered_at >= w[0],
            Order.ordered_at < w[1],
            Order.customer_id.in_(before),
        ),
    )
    return round(again / earlier, 4) if earlier else None


async def avg_satisfaction(s: AsyncSession, p: Principal, w: Window, *_: dt.date) -> float | None:
    """Mean satisfaction (1–5) of the return visits in the period."""
    value = await s.scalar(
        select(func.avg(FollowUp.satisfaction)).where(
            access.readable(p, FollowUp),
            FollowUp.type == "return_visit",
            FollowUp.occurred_at >= w[0],
            FollowUp.occurred_at < w[1],
        )
    )
    return round(float(value), 2) if value is not None else None


METRICS: dict[str, Metric] = {
    "new_customers": new_customers,
    "follow_ups": follow_ups,
    "visits": visits,
    "new_opportunities": new_opportunities,
    "won_amount": won_amount,
    "contracts_signed": contracts_signed,
    "payments_received": payments_received,
    "conversion_rate": conversion_rate,
    "retention_rate": retention_rate,
    "avg_satisfaction": avg_satisfaction,
}


def metric_docs() -> str:
    return "\n".join(f"* `{name}`: {(fn.__doc__ or '').strip()}" for name, fn in METRICS.items())


def _change(value: Any, previous: Any) -> tuple[Any, float | None]:
    if value is None or previous is None:
        return None, None
    delta = value - previous
    if isinstance(delta, float):
        delta = round(delta, 4)
    percent = round(float(delta) / float(previous), 4) if previous else None
    return delta, percent


async def brief(
    session: AsyncSession, principal: Principal, *, period: str, day: dt.date | None
) -> dict[str, Any]:
    zone = user_zone(
        await session.scalar(select(User.timezone).where(User.id == principal.user_id))
    )
    day = day or utcnow().astimezone(zone).date()
    first, after = period_bounds(period, day)
    previous_first, _ = period_bounds(period, first - dt.timedelta(days=1))

    def window(a: dt.date, b: dt.date) -> Window:
        return (
            dt.datetime.combine(a, dt.time(), tzinfo=zone).astimezone(dt.UTC),
            dt.datetime.combine(b, dt.time(), tzinfo=zone).astimezone(dt.UTC),
        )

    figures = {}
    for name, metric in METRICS.items():
        value = await metric(session, principal, window(first, after), first, after)
        previous = await metric(
            session, principal, window(previous_first, first), previous_first, first
        )
        delta, percent = _change(value, previous)
        figures[name] = {
            "value": value,
            "previous": previous,
            "change": delta,
            "change_pct": percent,
        }
    return {
        "period": period,
        "start": first,
        "end": after - dt.timedelta(days=1),
        "previous_start": previous_first,
        "timezone": zone.key,
        "metrics": figures,
    }


async def trend(
    session: AsyncSession,
    principal: Principal,
    *,
    metric: str,
    granularity: str,
    first: dt.date,
    last: dt.date,
) -> dict[str, Any]:
    """A metric per day, week or month from the bucket containing ``first`` to the one
    containing ``last`` (at most 100 buckets)."""
    if metric not in METRICS:
        raise ValidationFailed(
            errors=[field_error("metric", f"one of {', '.join(METRICS)}", where="query")]
        )
    if last < first:
        raise ValidationFailed(
            errors=[field_error("to", "must not come before from", where="query")]
        )
    zone = user_zone(
        await session.scalar(select(User.timezone).where(User.id == principal.user_id))
    )
    buckets: list[dict[str, Any]] = []
    start, after = period_bounds(granularity, first)
    while start <= last:
        if len(buckets) == 100:
            raise ValidationFailed(errors=[field_error("to", "at most 100 buckets", where="query")])
        window = (
            dt.datetime.combine(start, dt.time(), tzinfo=zone).astimezone(dt.UTC),
            dt.datetime.combine(after, dt.time(), tzinfo=zone).astimezone(dt.UTC),
        )
        value = await METRICS[metric](session, principal, window, start, after)
        buckets.append({"start": start, "value": value})
        start, after = period_bounds(granularity, after)
    return {"metric": metric, "granularity": granularity, "timezone": zone.key, "buckets": buckets}


async def ranking(
    session: AsyncSession, principal: Principal, *, metric: str, period: str, day: dt.date | None
) -> dict[str, Any]:
    """Users in your scope ranked by a metric over their own records for the period."""
    if metric not in METRICS:
        raise ValidationFailed(
            errors=[field_error("metric", f"one of {', '.join(METRICS)}", where="query")]
        )
    zone = user_zone(
        await session.scalar(select(User.timezone).where(User.id == principal.user_id))
    )
    day = day or utcnow().astimezone(zone).date()
    first, after = period_bounds(period, day)
    window = (
        dt.datetime.combine(first, dt.time(), tzinfo=zone).astimezone(dt.UTC),
        dt.datetime.combine(after, dt.time(), tzinfo=zone).astimezone(dt.UTC),
    )
    people = (
        await session.execute(
            select(User.id, User.display_name, User.department_id).where(
                User.is_active.is_(True), access.owner_in_scope(principal, "customer", User.id)
            )
        )
    ).all()
    rows: list[dict[str, Any]] = []
    for user_id, name, department_id in people:
        own = access.Principal(
            user_id=user_id,
            username="",
            display_name=name,
            department_id=department_id,
            department_path=None,
            managed_paths=(),
            permissions=frozenset(),
            scopes={"customer": access.DataScope.OWN},
            team_read_ids=frozenset(),
            team_write_ids=frozenset(),
        )
        value = await METRICS[metric](session, own, window, first, after)
        rows.append({"user": {"id": user_id, "display_name": name}, "value": value})
    rows.sort(key=lambda r: (r["value"] is None, -(float(r["value"] or 0)), r["user"]["id"]))
    for position, row in enumerate(rows, 1):
        row["rank"] = position
    return {
        "metric": metric,
        "period": period,
        "start": first,
        "end": after - dt.timedelta(days=1),
        "rows": rows,
    }


# --- targets (G2) ------------------------------------------------------------------------------

MONEY_METRICS = frozenset({"won_amount", "payments_received"})
TARGET_METRICS = (
    "won_amount",
    "payments_received",
    "new_customers",
    "follow_ups",
    "visits",
    "new_opportunities",
    "contracts_signed",
)


def _month_window(month: str, zone: Any) -> tuple[Window, dt.date, dt.date]:
    first = dt.date.fromisoformat(f"{month}-01")
    after = (first + dt.timedelta(days=32)).replace(day=1)
    window = (
        dt.datetime.combine(first, dt.time(), tzinfo=zone).astimezone(dt.UTC),
        dt.datetime.combine(after, dt.time(), tzinfo=zone).astimezone(dt.UTC),
    )
    return window, first, after


async def _subject_principal(session: AsyncSession, target: Target) -> Principal:
    """A principal whose data scope is the target's subject: the user's own records, or the
    department and its children."""
    if target.user_id is not None:
        return access.Principal(
            user_id=target.user_id,
            username="",
            display_name="",
            department_id=None,
            department_path=None,
            managed_paths=(),
            permissions=frozenset(),
            scopes={"customer": access.DataScope.OWN},
        )
    department = await session.get(Department, target.department_id)
    assert department is not None
    return access.Principal(
        user_id=0,
        username="",
        display_name="",
        department_id=department.id,
        department_path=department.path,
        managed_paths=(),
        permissions=frozenset(),
        scopes={"customer": access.DataScope.DEPARTMENT_AND_CHILDREN},
    )


def _target_visible(principal: Principal) -> ColumnElement[bool]:
    """Targets of users in the caller's scope, and of departments the caller belongs to or
    manages (admins see all)."""
    if principal.scope("customer") is access.DataScope.ALL:
        return true()
    paths = [p for p in (principal.department_path, *principal.managed_paths) if p]
    department_ok = (
        Target.department_id.in_(
            select(Department.id).where(
                or_(*(Department.path.startswith(p, autoescape=True) for p in paths))
            )
        )
        if paths
        else false()
    )
    return or_(access.owner_in_scope(principal, "customer", Target.user_id), department_ok)


async def target_views(session: AsyncSession, targets: list[Target]) -> list[dict[str, Any]]:
    zone = user_zone(None)
    out = []
    for target in targets:
        window, first, after = _month_window(target.month, zone)
        actual = await METRICS[target.metric](
            session, await _subject_principal(session, target), window, first, after
        )
        goal: Decimal | int = (
            from_cents(target.target_value)
            if target.metric in MONEY_METRICS
            else target.target_value
        )
        done = float(actual or 0) / float(goal) if goal else None
        out.append(
            {
                "id": target.id,
                "user_id": target.user_id,
                "department_id": target.department_id,
                "month": target.month,
                "metric": target.metric,
                "target": goal,
                "actual": actual,
                "completion": round(done, 4) if done is not None else None,
                "version": target.version,
            }
        )
    return out


async def list_targets(
    session: AsyncSession, principal: Principal, *, month: str | None
) -> list[dict[str, Any]]:
    stmt = select(Target).where(_target_visible(principal)).order_by(Target.month, Target.id)
    if month is not None:
        stmt = stmt.where(Target.month == month)
    return await target_views(session, list((await session.scalars(stmt.limit(500))).all()))


async def set_target(session: AsyncSession, principal: Principal, data: Any) -> Target:
    """Create or replace the target for (subject, month, metric)."""
    if (data.user_id is None) == (data.department_id is None):
        raise ValidationFailed(errors=[field_error("user_id", "give a user or a department")])
    if data.user_id is not None:
        allowed = await session.scalar(
            select(User.id).where(
                User.id == data.user_id, access.owner_in_scope(principal, "customer", User.id)
            )
        )
        if allowed is None:
            raise ValidationFailed(errors=[field_error("user_id", "no such user in your scope")])
    else:
        visible = await session.scalar(
            select(Department.id).where(Department.id == data.department_id)
        )
        if visible is None:
            raise ValidationFailed(errors=[field_error("department_id", "no such department")])
    value = int(data.target * 100) if data.metric in MONEY_METRICS else int(data.target)
    if value <= 0 or (data.metric not in MONEY_METRICS and data.target != int(data.target)):
        raise ValidationFailed(
            errors=[field_error("target", "a positive amount, or a whole count")]
        )
    target = await session.scalar(
        select(Target).where(
            Target.user_id.is_(None) if data.user_id is None else Target.user_id == data.user_id,
            Target.department_id.is_(None)
            if data.department_id is None
            else Target.department_id == data.department_id,
            Target.month == data.month,
            Target.metric == data.metric,
        )
    )
    if target is None:
        target = Target(
            user_id=data.user_id,
            department_id=data.department_id,
            month=data.month,
            metric=data.metric,
            target_value=value,
        )
        session.add(target)
    else:
        target.target_value = value
        target.updated_at = utcnow()
    await session.flush()
    return target


async def delete_target(session: AsyncSession, principal: Principal, target_id: int) -> None:
    target = await session.scalar(
        select(Target).where(Target.id == target_id, _target_visible(principal))
    )
    if target is None:
        raise NotFound(f"target {target_id} not found")
    await session.delete(target)
    await session.flush()
