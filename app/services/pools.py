"""Customer pools (公海池, SPEC C1–C6): configuration, claim/assign/release/move, reclaim, stats.

Claiming is race-safe without locks held across requests: a claim is one conditional
``UPDATE customers ... WHERE id = ? AND pool_id = ? AND owner_id IS NULL`` — of any number of
concurrent claims on a customer exactly one matches a row, the others find it owned (409). The
daily claim limit is a counter row incremented by one conditional upsert
(``... ON CONFLICT DO UPDATE SET count = count + 1 WHERE count < limit RETURNING``), so it is
counted in the database and never read-then-written.

Reclaim (``reclaim_neglected_customers``) is set-based: per pool, one query selects the due ids,
then each batch is one UPDATE (re-checking the rules) ``RETURNING`` what changed, followed by bulk
inserts of the ownership history, timeline events and notifications — one transaction per batch.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    String,
    Table,
    and_,
    any_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    not_,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from app import access
from app.access import Principal
from app.db import chunks, dialect_insert, transaction
from app.errors import Conflict, Forbidden, NotFound, ValidationFailed, field_error
from app.models import (
    AuditEvent,
    ClaimCounter,
    Contract,
    Customer,
    Department,
    Opportunity,
    OwnershipEvent,
    Pool,
    PoolMember,
    PoolRule,
    User,
    WebhookEvent,
)
from app.models.base import UTCDateTime, utcnow
from app.schemas.pool import PoolCreate, PoolMemberIn, PoolRuleIn, PoolUpdate
from app.services import audit, notifications, ownership, webhooks
from app.services.ownership import Change
from app.services.versions import check_version, flush_versioned

log = logging.getLogger("kehu.pools")

RULE_LABELS = {
    "no_follow_up": "no follow-up",
    "no_opportunity": "no opportunity",
    "no_deal": "no deal",
}


def rule_reason(kind: str, days: int) -> str:
    """The recorded reason, e.g. "no follow-up for 30 days"."""
    return f"{RULE_LABELS[kind]} for {days} days"


# --- reading and configuring pools --------------------------------------------------------------


def _is_pool_admin(principal: Principal, pool_id: int) -> bool:
    return pool_id in principal.pool_admin_ids or principal.can("pool.manage")


def _visible(principal: Principal) -> ColumnElement[bool]:
    if principal.can("pool.manage"):
        return true()
    if not principal.pool_ids:
        return false()
    return Pool.id.in_(sorted(principal.pool_ids))


async def get_pool(session: AsyncSession, principal: Principal, pool_id: int) -> Pool:
    """A pool the caller belongs to (or manages pools); otherwise 404."""
    pool = await session.scalar(select(Pool).where(Pool.id == pool_id, _visible(principal)))
    if pool is None:
        raise NotFound(f"pool {pool_id} not found")
    return pool


async def _admin_pool(session: AsyncSession, principal: Principal, pool_id: int) -> Pool:
    pool = await get_pool(session, principal, pool_id)
    if not _is_pool_admin(principal, pool_id):
        raise Forbidden("only the pool's admins may do this")
    return pool


def business_day(now: dt.datetime, zone: str) -> dt.date:
    return now.astimezone(ZoneInfo(zone)).date()


async def pool_views(
    session: AsyncSession, principal: Principal, pools: Sequence[Pool], *, day: dt.date
) -> list[dict[str, Any]]:
    """Pools with their rules, members, customer counts and the caller's claims left today."""
    ids = [p.id for p in pools]
    if not ids:
        return []
    rules: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for rule in (
        await session.scalars(
            select(PoolRule).where(PoolRule.pool_id.in_(ids)).order_by(PoolRule.kind)
        )
    ).all():
        rules[rule.pool_id].append(
            {"kind": rule.kind, "days": rule.days, "level_days": rule.level_days or {}}
        )
    members: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for member, user_name, dept_name in (
        await session.execute(
            select(PoolMember, User.display_name, Department.name)
            .outerjoin(User, User.id == PoolMember.user_id)
            .outerjoin(Department, Department.id == PoolMember.department_id)
            .where(PoolMember.pool_id.in_(ids))
            .order_by(PoolMember.role, PoolMember.id)
        )
    ).all():
        members[member.pool_id].append(
            {
                "role": member.role,
                "user": {"id": member.user_id, "display_name": user_name}
                if member.user_id
                else None,
                "department": {"id": member.department_id, "name": dept_name}
                if member.department_id
                else None,
            }
        )
    counts = dict(
        (
            await session.execute(
                select(Customer.pool_id, func.count())
                .where(Customer.pool_id.in_(ids), Customer.deleted_at.is_(None))
                .group_by(Customer.pool_id)
            )
        ).all()
    )
    used = dict(
        (
            await session.execute(
                select(ClaimCounter.pool_id, ClaimCounter.count).where(
                    ClaimCounter.pool_id.in_(ids),
                    ClaimCounter.user_id == principal.user_id,
                    ClaimCounter.day == day,
                )
            )
        ).all()
    )
    out = []
    for pool in pools:
        role = (
            "admin"
            if pool.id in principal.pool_admin_ids
            else "member"
            if pool.id in principal.pool_ids
            else None
        )
        left = (
            None
            if pool.daily_claim_limit is None
            else max(0, pool.daily_claim_limit - used.get(pool.id, 0))
        )
        out.append(
            {
                **{c: getattr(pool, c) for c in _POOL_COLUMNS},
                "id": pool.id,
                "version": pool.version,
                "rules": rules[pool.id],
                "members": members[pool.id],
                "customer_count": counts.get(pool.id, 0),
                "my_role": role,
                "claims_left_today": left,
            }
        )
    return out


_POOL_COLUMNS = (
    "name",
    "description",
    "enabled",
    "exclude_signed",
    "exclude_open_opportunity",
    "warning_days",
    "daily_claim_limit",
    "cooling_days",
    "hidden_fields",
)


async def list_pools(session: AsyncSession, principal: Principal) -> list[Pool]:
    return list(
        (await session.scalars(select(Pool).where(_visible(principal)).order_by(Pool.id))).all()
    )


async def _check_members(session: AsyncSession, members: Sequence[PoolMemberIn]) -> None:
    user_ids = {m.user_id for m in members if m.user_id is not None}
    dept_ids = {m.department_id for m in members if m.department_id is not None}
    known_users = set((await session.scalars(select(User.id).where(User.id.in_(user_ids)))).all())
    known_depts = set(
        (await session.scalars(select(Department.id).where(Department.id.in_(dept_ids)))).all()
    )
    errors = [
        field_error("members", f"no such user: {u}") for u in sorted(user_ids - known_users)
    ] + [field_error("members", f"no such department: {d}") for d in sorted(dept_ids - known_depts)]
    seen: set[tuple[str, int | None, int | None]] = set()
    for m in members:
        key = (m.role, m.user_id, m.department_id)
        if key in seen:
            errors.append(field_error("members", f"listed twice: {m.model_dump()}"))
        seen.add(key)
    if errors:
        raise ValidationFailed(errors=errors)


async def _replace_rules(session: AsyncSession, pool_id: int, rules: Sequence[PoolRuleIn]) -> None:
    await session.execute(delete(PoolRule).where(PoolRule.pool_id == pool_id))
    session.add_all(
        PoolRule(pool_id=pool_id, kind=r.kind, days=r.days, level_days=dict(r.level_days))
        for r in rules
    )


async def _replace_members(
    session: AsyncSession, pool_id: int, members: Sequence[PoolMemberIn]
) -> None:
    await _check_members(session, members)
    await session.execute(delete(PoolMember).where(PoolMember.pool_id == pool_id))
    session.add_all(
        PoolMember(pool_id=pool_id, role=m.role, user_id=m.user_id, department_id=m.department_id)
        for m in members
    )


async def _name_free(session: AsyncSession, name: str, exclude_id: int | None = None) -> None:
    taken = await session.scalar(
        select(Pool.id).where(Pool.name == name, Pool.id != (exclude_id or 0))
    )
    if taken is not None:
        raise Conflict(f"a pool named {name!r} exists")


def _require_manage(principal: Principal) -> None:
    if not principal.can("pool.manage"):
        raise Forbidden("requires permission pool.manage")


async def create_pool(session: AsyncSession, principal: Principal, data: PoolCreate) -> Pool:
    _require_manage(principal)
    await _name_free(session, data.name)
    pool = Pool(**data.model_dump(exclude={"rules", "members"}))
    session.add(pool)
    await session.flush()
    await _replace_rules(session, pool.id, data.rules)
    await _replace_members(session, pool.id, data.members)
    await session.flush()
    return pool


async def update_pool(
    session: AsyncSession, principal: Principal, pool_id: int, version: int, data: PoolUpdate
) -> Pool:
    _require_manage(principal)
    pool = await get_pool(session, principal, pool_id)
    check_version(pool, version)
    changes = data.model_dump(exclude_unset=True, exclude={"rules", "members"})
    if "name" in changes:
        await _name_free(session, changes["name"], pool.id)
    for key, value in changes.items():
        setattr(pool, key, value)
    if data.rules is not None:
        await _replace_rules(session, pool.id, data.rules)
    if data.members is not None:
        await _replace_members(session, pool.id, data.members)
    pool.updated_at = utcnow()  # rules and members are part of the pool's version
    await flush_versioned(session)
    return pool


async def delete_pool(
    session: AsyncSession, principal: Principal, pool_id: int, version: int
) -> None:
    _require_manage(principal)
    pool = await get_pool(session, principal, pool_id)
    check_version(pool, version)
    held = await session.scalar(
        select(func.count()).select_from(Customer).where(Customer.pool_id == pool_id)
    )
    if held:
        raise Conflict(
            f"the pool holds {held} customer(s); move them to another pool first", customers=held
        )
    await session.delete(pool)
    await session.flush()


# --- claim, assign, release, move --------------------------------------------------------------


@dataclass
class Outcome:
    customer_id: int
    outcome: str
    reason: str | None = None
    detail: str | None = None
    until: dt.datetime | None = None  # cooling_period: when the customer may be claimed again
    limit: int | None = None  # daily_limit / owned_cap: the limit that was reached


def _refused(cid: int, reason: str, detail: str, **extra: Any) -> Outcome:
    return Outcome(cid, "refused", reason, detail, **extra)


async def _take_claim_slot(session: AsyncSession, pool: Pool, user_id: int, day: dt.date) -> bool:
    """Count one claim against the daily limit, atomically; False when the limit is reached."""
    limit = pool.daily_claim_limit
    if limit is None:
        return True
    if limit <= 0:
        return False
    stmt = (
        dialect_insert(session, ClaimCounter)
        .values(pool_id=pool.id, user_id=user_id, day=day, count=1)
        .on_conflict_do_update(
            index_elements=[ClaimCounter.pool_id, ClaimCounter.user_id, ClaimCounter.day],
            set_={"count": ClaimCounter.count + 1},
            where=ClaimCounter.count < limit,
        )
        .returning(ClaimCounter.count)
    )
    return (await session.execute(stmt)).first() is not None


async def _give_back_claim_slot(
    session: AsyncSession, pool: Pool, user_id: int, day: dt.date
) -> None:
    if pool.daily_claim_limit is None:
        return
    await session.execute(
        update(ClaimCounter)
        .where(
            ClaimCounter.pool_id == pool.id,
            ClaimCounter.user_id == user_id,
            ClaimCounter.day == day,
            ClaimCounter.count > 0,
        )
        .values(count=ClaimCounter.count - 1)
    )


async def _take_from_pool(
    session: AsyncSession, pool_id: int, customer_id: int, owner_id: int, now: dt.datetime
) -> bool:
    """The one conditional UPDATE that decides a claim race."""
    row = (
        await session.execute(
            update(Customer)
            .where(
                Customer.id == customer_id,
                Customer.pool_id == pool_id,
                Customer.owner_id.is_(None),
                Customer.deleted_at.is_(None),
            )
            .values(
                owner_id=owner_id,
                owner_assigned_at=now,
                pool_id=None,
                pooled_at=None,
                pool_reason=None,
                reclaim_warned_due_at=None,
                updated_at=now,
                version=Customer.version + 1,
            )
            .returning(Customer.id)
            .execution_options(synchronize_session=False)
        )
    ).first()
    return row is not None


async def _cooling(
    session: AsyncSession, pool: Pool, user_id: int, ids: Sequence[int], now: dt.datetime
) -> dict[int, dt.datetime]:
    """Customers the user gave up (released or lost to reclaim) within the cooling period,
    with the moment each may be claimed again."""
    if pool.cooling_days <= 0 or not ids:
        return {}
    period = dt.timedelta(days=pool.cooling_days)
    rows = await session.execute(
        select(OwnershipEvent.customer_id, func.max(OwnershipEvent.at))
        .where(
            OwnershipEvent.from_owner_id == user_id,
            OwnershipEvent.customer_id.in_(ids),
            OwnershipEvent.action.in_(("released", "reclaimed")),
            OwnershipEvent.at > now - period,
        )
        .group_by(OwnershipEvent.customer_id)
    )
    return {cid: at + period for cid, at in rows.all()}


async def _take(
    session: AsyncSession,
    principal: Principal,
    pool: Pool,
    customer_ids: Sequence[int],
    *,
    owner_id: int,
    action: str,
    zone: str,
) -> list[Outcome]:
    now = utcnow()
    day = business_day(now, zone)
    rows = {
        cid: (pool_id, owner, name)
        for cid, pool_id, owner, name in (
            await session.execute(
                select(Customer.id, Customer.pool_id, Customer.owner_id, Customer.name).where(
                    Customer.id.in_(customer_ids),
                    Customer.deleted_at.is_(None),
                    access.readable(principal, Customer),
                )
            )
        ).all()
    }
    # Customers taken from this pool since the caller's list was loaded: "already owned" (the
    # caller may no longer see them, but they saw them in the pool a moment ago).
    gone = [cid for cid in customer_ids if cid not in rows]
    taken_away = (
        set(
            (
                await session.scalars(
                    select(OwnershipEvent.customer_id).where(
                        OwnershipEvent.customer_id.in_(gone),
                        OwnershipEvent.pool_id == pool.id,
                        OwnershipEvent.action.in_(("claimed", "assigned")),
                    )
                )
            ).all()
        )
        if gone
        else set()
    )
    cooling = (
        await _cooling(session, pool, owner_id, list(rows), now) if action == "claimed" else {}
    )
    cap = (await ownership.caps(session, owner_id))[0]
    room = await ownership.owned_room(session, owner_id)
    results: list[Outcome] = []
    taken: list[tuple[int, str]] = []
    for cid in customer_ids:
        if cid in taken_away:
            results.append(_refused(cid, "already_owned", "someone else took it first"))
            continue
        if cid not in rows:
            results.append(_refused(cid, "not_found", "no such customer you may see"))
            continue
        pool_id, owner, name = rows[cid]
        if pool_id != pool.id:
            if owner is not None:
                results.append(_refused(cid, "already_owned", "the customer has an owner"))
            else:
                results.append(_refused(cid, "not_in_pool", "the customer is not in this pool"))
            continue
        if not pool.enabled:
            results.append(_refused(cid, "pool_disabled", "the pool is disabled"))
            continue
        if cid in cooling:
            results.append(
                _refused(
                    cid,
                    "cooling_period",
                    f"you gave this customer up recently; claim again after "
                    f"{cooling[cid].isoformat(timespec='minutes')}",
                    until=cooling[cid],
                )
            )
            continue
        if room is not None and room <= 0:
            results.append(
                _refused(cid, "owned_cap", "the owner's customer cap is reached", limit=cap)
            )
            continue
        if action == "claimed" and not await _take_claim_slot(session, pool, owner_id, day):
            results.append(
                _refused(
                    cid,
                    "daily_limit",
                    f"daily claim limit of {pool.daily_claim_limit} reached",
                    limit=pool.daily_claim_limit,
                )
            )
            continue
        if not await _take_from_pool(session, pool.id, cid, owner_id, now):
            if action == "claimed":
                await _give_back_claim_slot(session, pool, owner_id, day)
            results.append(_refused(cid, "already_owned", "someone else took it first"))
            continue
        if room is not None:
            room -= 1
        results.append(Outcome(cid, action))
        taken.append((cid, name))
    if taken:
        await ownership.record(
            session,
            [Change(cid, action, None, owner_id, pool.id) for cid, _ in taken],
            actor_id=principal.user_id,
            at=now,
        )
        for cid, _ in taken:
            audit.customer_event(
                session,
                principal.user_id,
                cid,
                action,
                {
                    "owner_id": {"before": None, "after": owner_id},
                    "pool": {"before": pool.name, "after": None},
                },
            )
        if action == "assigned" and owner_id != principal.user_id:
            names = "、".join(name for _, name in taken[:3])
            await notifications.deliver(
                session,
                [
                    notifications.Draft(
                        user_id=owner_id,
                        kind="customers_assigned",
                        title=f"{principal.display_name} 从公海「{pool.name}」分配给你 "
                        f"{len(taken)} 个客户",
                        body=names + ("等" if len(taken) > 3 else ""),
                        link=f"/customers/{taken[0][0]}" if len(taken) == 1 else "/customers",
                        data={"pool_id": pool.id, "customer_ids": [cid for cid, _ in taken]},
                    )
                ],
                now,
            )
    if not taken:
        # Nothing changed: answer 409 with the per-customer reasons (the counters roll back).
        raise Conflict(
            "no customer was taken from the pool", results=[_jsonable(r) for r in results]
        )
    return results


def _jsonable(outcome: Outcome) -> dict[str, Any]:
    data = dict(outcome.__dict__)
    if outcome.until is not None:
        data["until"] = outcome.until.isoformat()
    return data


async def claim(
    session: AsyncSession,
    principal: Principal,
    pool_id: int,
    customer_ids: Sequence[int],
    *,
    zone: str,
) -> list[Outcome]:
    """A member takes customers from the pool for themself (C4)."""
    pool = await get_pool(session, principal, pool_id)
    if pool_id not in principal.pool_ids:
        raise Forbidden("only members of the pool may claim from it")
    return await _take(
        session,
        principal,
        pool,
        customer_ids,
        owner_id=principal.user_id,
        action="claimed",
        zone=zone,
    )


async def assign(
    session: AsyncSession,
    principal: Principal,
    pool_id: int,
    customer_ids: Sequence[int],
    owner_id: int,
    *,
    zone: str,
) -> list[Outcome]:
    """A pool admin gives customers from the pool to an active user (C4)."""
    pool = await _admin_pool(session, principal, pool_id)
    active = await session.scalar(
        select(User.id).where(User.id == owner_id, User.is_active.is_(True))
    )
    if active is None:
        raise ValidationFailed(errors=[field_error("owner_id", "no such active user")])
    return await _take(
        session, principal, pool, customer_ids, owner_id=owner_id, action="assigned", zone=zone
    )


def _into_pool_values(pool_id: int, reason: str, now: dt.datetime) -> dict[str, Any]:
    return {
        "previous_owner_id": Customer.owner_id,
        "owner_id": None,
        "owner_assigned_at": None,
        "pool_id": pool_id,
        "pooled_at": now,
        "pool_reason": reason,
        "locked_at": None,
        "locked_by_id": None,
        "reclaim_warned_due_at": None,
        "updated_at": now,
        "version": Customer.version + 1,
    }


async def release(
    session: AsyncSession, principal: Principal, customer_id: int, pool_id: int, reason: str
) -> Customer:
    """The owner puts a customer back into a pool they belong to, with a reason (C4)."""
    customer = await access.get_writable(session, principal, Customer, customer_id)
    if customer.owner_id != principal.user_id:
        raise Forbidden("only the owner may release a customer")
    pool = await session.scalar(select(Pool).where(Pool.id == pool_id))
    if pool is None or pool_id not in principal.pool_ids:
        raise ValidationFailed(errors=[field_error("pool_id", "not a pool you belong to")])
    if not pool.enabled:
        raise Conflict("the pool is disabled")
    now = utcnow()
    await session.execute(
        update(Customer)
        .where(Customer.id == customer.id, Customer.owner_id == principal.user_id)
        .values(**_into_pool_values(pool.id, reason, now))
        .execution_options(synchronize_session=False)
    )
    await ownership.record(
        session,
        [Change(customer.id, "released", principal.user_id, None, pool.id, reason)],
        actor_id=principal.user_id,
        at=now,
    )
    audit.customer_event(
        session,
        principal.user_id,
        customer.id,
        "released",
        {
            "owner_id": {"before": principal.user_id, "after": None},
            "pool": {"before": None, "after": pool.name},
            "reason": {"before": None, "after": reason},
        },
    )
    await session.flush()
    await session.refresh(customer)
    return customer


async def move(
    session: AsyncSession,
    principal: Principal,
    pool_id: int,
    customer_ids: Sequence[int],
    to_pool_id: int,
) -> list[Outcome]:
    """A pool admin moves customers to another pool (admin of both, or pool.manage)."""
    source = await _admin_pool(session, principal, pool_id)
    target = await session.scalar(select(Pool).where(Pool.id == to_pool_id))
    if target is None or not _is_pool_admin(principal, to_pool_id):
        raise ValidationFailed(errors=[field_error("to_pool_id", "not a pool you administer")])
    if target.id == source.id:
        raise ValidationFailed(errors=[field_error("to_pool_id", "already in this pool")])
    now = utcnow()
    moved = set(
        (
            await session.scalars(
                update(Customer)
                .where(
                    Customer.id.in_(customer_ids),
                    Customer.pool_id == source.id,
                    Customer.owner_id.is_(None),
                )
                .values(pool_id=target.id, updated_at=now, version=Customer.version + 1)
                .returning(Customer.id)
                .execution_options(synchronize_session=False)
            )
        ).all()
    )
    await ownership.record(
        session,
        [Change(cid, "moved", None, None, target.id, f"from {source.name}") for cid in moved],
        actor_id=principal.user_id,
        at=now,
    )
    for cid in sorted(moved):
        audit.customer_event(
            session,
            principal.user_id,
            cid,
            "moved",
            {"pool": {"before": source.name, "after": target.name}},
        )
    return [
        Outcome(cid, "moved")
        if cid in moved
        else _refused(cid, "not_in_pool", "the customer is not in this pool")
        for cid in customer_ids
    ]


# --- statistics ----------------------------------------------------------------------------------


async def stats(
    session: AsyncSession,
    principal: Principal,
    pool_id: int,
    date_from: dt.date,
    date_to: dt.date,
    *,
    zone: str,
) -> dict[str, Any]:
    """Inflow (reclaimed, released) and outflow (claimed, assigned) per rep, days inclusive."""
    await _admin_pool(session, principal, pool_id)
    if date_to < date_from:
        raise ValidationFailed(errors=[field_error("to", "before from", where="query")])
    tz = ZoneInfo(zone)
    start = dt.datetime.combine(date_from, dt.time(), tzinfo=tz)
    end = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    rep = case(
        (OwnershipEvent.action.in_(("reclaimed", "released")), OwnershipEvent.from_owner_id),
        else_=OwnershipEvent.to_owner_id,
    ).label("rep")
    rows = (
        await session.execute(
            select(rep, OwnershipEvent.action, func.count())
            .where(
                OwnershipEvent.pool_id == pool_id,
                OwnershipEvent.at >= start,
                OwnershipEvent.at < end,
                OwnershipEvent.action.in_(("reclaimed", "released", "claimed", "assigned")),
            )
            .group_by(rep, OwnershipEvent.action)
        )
    ).all()
    per_rep: dict[int, dict[str, int]] = defaultdict(
        lambda: {"reclaimed": 0, "released": 0, "claimed": 0, "assigned": 0}
    )
    for user_id, action, count in rows:
        if user_id is not None:
            per_rep[user_id][action] += count
    names = dict(
        (
            await session.execute(
                select(User.id, User.display_name).where(User.id.in_(list(per_rep)))
            )
        ).all()
    )
    ranked = sorted(per_rep.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    out_rows: list[dict[str, Any]] = [
        {"user": {"id": uid, "display_name": names.get(uid, "?")}, **counts}
        for uid, counts in ranked
    ]
    in_pool = await session.scalar(
        select(func.count()).select_from(Customer).where(Customer.pool_id == pool_id)
    )
    return {
        "pool_id": pool_id,
        "date_from": date_from,
        "date_to": date_to,
        "rows": out_rows,
        "inflow": sum(r["reclaimed"] + r["released"] for r in out_rows),
        "outflow": sum(r["claimed"] + r["assigned"] for r in out_rows),
        "in_pool": in_pool or 0,
    }


# --- reclaim -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleSet:
    """An enabled pool with its rules, as the reclaim job and the warnings read it."""

    pool_id: int
    name: str
    rules: tuple[tuple[str, int, tuple[tuple[str, int], ...]], ...]  # kind, days, level days
    exclude_signed: bool
    exclude_open_opportunity: bool
    warning_days: int
    # Users subject to the rules, resolved once per run: inlined, they let the planner use the
    # owner index (as a subquery PostgreSQL guessed 2 rows and looped; bench/RESULTS.md).
    member_ids: tuple[int, ...] = ()


async def rule_sets(session: AsyncSession) -> list[RuleSet]:
    pools = (
        await session.scalars(select(Pool).where(Pool.enabled.is_(True)).order_by(Pool.id))
    ).all()
    rules: dict[int, list[PoolRule]] = defaultdict(list)
    for rule in (await session.scalars(select(PoolRule).order_by(PoolRule.kind))).all():
        rules[rule.pool_id].append(rule)
    sets = []
    for p in pools:
        if not rules[p.id]:
            continue
        members = tuple(sorted((await session.scalars(_pool_members_subquery(p.id))).all()))
        sets.append(
            RuleSet(
                p.id,
                p.name,
                tuple(
                    (r.kind, r.days, tuple(sorted((r.level_days or {}).items())))
                    for r in rules[p.id]
                ),
                p.exclude_signed,
                p.exclude_open_opportunity,
                p.warning_days,
                members,
            )
        )
    return sets


def _pool_members_subquery(pool_id: int) -> Any:
    """Users subject to the pool's rules: its members, directly or through a department (child
    departments included)."""
    direct = select(PoolMember.user_id).where(
        PoolMember.pool_id == pool_id, PoolMember.role == "member", PoolMember.user_id.is_not(None)
    )
    member_dept = aliased(Department)
    via_dept = (
        select(User.id)
        .join(Department, Department.id == User.department_id)
        .join(PoolMember, and_(PoolMember.pool_id == pool_id, PoolMember.role == "member"))
        .join(member_dept, member_dept.id == PoolMember.department_id)
        .where(Department.path.startswith(member_dept.path))
    )
    return direct.union(via_dept)


def _quiet_since(kind: str, cutoff: dt.datetime) -> ColumnElement[bool]:
    """Nothing of ``kind`` happened since ``cutoff`` and the owner has had it since before."""
    received = func.coalesce(Customer.owner_assigned_at, Customer.created_at) < cutoff
    if kind == "no_follow_up":
        event: ColumnElement[bool] = or_(
            Customer.last_follow_up_at.is_(None), Customer.last_follow_up_at < cutoff
        )
    elif kind == "no_opportunity":
        event = not_(
            exists().where(Opportunity.customer_id == Customer.id, Opportunity.created_at >= cutoff)
        )
    else:
        event = and_(
            or_(Customer.signed_at.is_(None), Customer.signed_at < cutoff),
            not_(exists().where(Contract.customer_id == Customer.id, Contract.signed_at >= cutoff)),
        )
    return and_(received, event)


def _rule_branches(rules: RuleSet, now: dt.datetime) -> list[tuple[ColumnElement[bool], str]]:
    """(condition, reason) per rule and level group: a customer is due when any holds."""
    branches = []
    for kind, days, level_days in rules.rules:
        overridden = [lvl for lvl, _ in level_days]
        for level, level_d in level_days:
            branches.append(
                (
                    and_(
                        Customer.level == level,
                        _quiet_since(kind, now - dt.timedelta(days=level_d)),
                    ),
                    rule_reason(kind, level_d),
                )
            )
        default_levels: ColumnElement[bool] = (
            or_(Customer.level.is_(None), Customer.level.not_in(overridden))
            if overridden
            else true()
        )
        branches.append(
            (
                and_(default_levels, _quiet_since(kind, now - dt.timedelta(days=days))),
                rule_reason(kind, days),
            )
        )
    return branches


def _eligible(rules: RuleSet) -> list[ColumnElement[bool]]:
    """Owned, live, unlocked customers of the pool's members, minus the excluded ones."""
    conditions: list[ColumnElement[bool]] = [
        Customer.owner_id.in_(rules.member_ids),
        Customer.deleted_at.is_(None),
        Customer.locked_at.is_(None),
    ]
    if rules.exclude_signed:
        conditions.append(Customer.deal_status != "signed")
    if rules.exclude_open_opportunity:
        conditions.append(
            not_(
                exists().where(Opportunity.customer_id == Customer.id, Opportunity.status == "open")
            )
        )
    return conditions


def due_condition(rules: RuleSet, now: dt.datetime) -> tuple[ColumnElement[bool], Any]:
    """(WHERE for customers due now, CASE giving the reason of each)."""
    branches = _rule_branches(rules, now)
    due = and_(*_eligible(rules), or_(*(cond for cond, _ in branches)))
    reason = case(*branches, else_=literal("reclaimed"))
    return due, reason


async def reclaim_neglected_customers(
    maker: async_sessionmaker[AsyncSession],
    *,
    now: dt.datetime | None = None,
    batch_size: int = 5000,
) -> int:
    """Move every due customer of every enabled pool into its pool; returns how many (C3).

    Each batch is one transaction: the customers and their ownership history and timeline
    entries commit together or not at all (a failure rolls its batch back and propagates).
    Running it again finds nothing due. Previous owners hear once per run, after the batches
    ("12 customers went to the pool"), not once per batch.
    """
    now = now or utcnow()
    async with maker() as session:
        sets = await rule_sets(session)
    total = 0
    for rules in sets:
        if not rules.member_ids:
            continue
        due, _ = due_condition(rules, now)
        async with maker() as session:
            found = await session.scalars(select(Customer.id).where(due).order_by(Customer.id))
            ids = list(found.all())
        lost: dict[int, _Lost] = {}
        try:
            for chunk in chunks(ids, batch_size):
                async with transaction(maker) as session:
                    moved = await _reclaim_batch(session, rules, chunk, now)
                for owner, batch_lost in moved.items():
                    lost.setdefault(owner, _Lost()).add(batch_lost)
                total += sum(item.count for item in moved.values())
        finally:
            # Owners of committed batches are told even when a later batch failed.
            if lost:
                async with transaction(maker) as session:
                    await _notify_reclaimed(session, rules, lost, now)
    return total


@dataclass
class _Lost:
    """What one previous owner lost to a pool in one run."""

    count: int = 0
    customer_ids: list[int] = field(default_factory=list)
    examples: list[tuple[str, str]] = field(default_factory=list)  # (name, reason), first few

    def add(self, other: _Lost) -> None:
        self.count += other.count
        self.customer_ids += other.customer_ids
        self.examples += other.examples[: max(0, 5 - len(self.examples))]


async def _notify_reclaimed(
    session: AsyncSession, rules: RuleSet, lost: dict[int, _Lost], now: dt.datetime
) -> None:
    drafts = [
        notifications.Draft(
            user_id=owner,
            kind="customers_reclaimed",
            title=f"{item.count} 个客户已被收回公海「{rules.name}」",
            body="；".join(f"{name}（{why}）" for name, why in item.examples)
            + ("等" if item.count > len(item.examples) else ""),
            link=f"/pools/{rules.pool_id}",
            data={"pool_id": rules.pool_id, "customer_ids": item.customer_ids[:500]},
        )
        for owner, item in sorted(lost.items())
    ]
    await notifications.deliver(session, drafts, now)


def _in_ids(ids: Sequence[int], dialect: str) -> ColumnElement[bool]:
    """``id IN (...)``; on PostgreSQL one array parameter (asyncpg allows 32,767 parameters)."""
    if dialect == "postgresql":
        return Customer.id == any_(cast(literal(list(ids), ARRAY(Integer)), ARRAY(Integer)))
    return Customer.id.in_(ids)


async def _reclaim_batch(
    session: AsyncSession, rules: RuleSet, ids: Sequence[int], now: dt.datetime
) -> dict[int, _Lost]:
    """Move one batch (re-checking the rules: a follow-up may have come in since the ids were
    selected); returns per previous owner what they lost."""
    due, reason = due_condition(rules, now)
    dialect = session.get_bind().dialect.name
    values = _into_pool_values(rules.pool_id, "", now)
    values["pool_reason"] = reason
    moved = (
        update(Customer)
        .where(_in_ids(ids, dialect), due)
        .values(**values)
        .returning(Customer.id, Customer.previous_owner_id, Customer.pool_reason, Customer.name)
    )
    if dialect == "postgresql":
        return await _reclaim_batch_in_one_statement(session, rules, moved, now)
    rows = (await session.execute(moved.execution_options(synchronize_session=False))).all()
    if not rows:
        return {}
    await ownership.record(
        session,
        [Change(cid, "reclaimed", prev, None, rules.pool_id, why) for cid, prev, why, _ in rows],
        actor_id=None,
        at=now,
    )
    await audit.record_rows(
        session,
        [
            audit.customer_event_row(
                None, cid, "reclaimed", _reclaim_changes(prev, rules.name, why), now
            )
            for cid, prev, why, _ in rows
        ],
    )
    lost: dict[int, _Lost] = {}
    for cid, prev, why, name in rows:
        if prev is not None:
            item = lost.setdefault(prev, _Lost())
            item.count += 1
            item.customer_ids.append(cid)
            if len(item.examples) < 5:
                item.examples.append((name, why or ""))
    log.info("reclaimed %d customers into pool %s", len(rows), rules.pool_id)
    return lost


def _reclaim_changes(previous: int | None, pool: str, reason: str | None) -> dict[str, Any]:
    return {
        "owner_id": {"before": previous, "after": None},
        "pool": {"before": None, "after": pool},
        "reason": {"before": None, "after": reason},
    }


async def _reclaim_batch_in_one_statement(
    session: AsyncSession, rules: RuleSet, moved_stmt: Any, now: dt.datetime
) -> dict[int, _Lost]:
    """PostgreSQL: the UPDATE, both history inserts and the per-owner summary in one statement
    (data-modifying CTEs), so no row of the batch travels to Python and back."""
    moved = moved_stmt.cte("moved")
    at = literal(now, UTCDateTime())
    history = insert(OwnershipEvent).from_select(
        ["customer_id", "at", "action", "from_owner_id", "pool_id", "reason"],
        select(
            moved.c.id,
            at,
            literal("reclaimed"),
            moved.c.previous_owner_id,
            literal(rules.pool_id),
            moved.c.pool_reason,
        ),
    )
    entry = func.jsonb_build_object
    changes = entry(
        "owner_id",
        entry("before", moved.c.previous_owner_id, "after", null()),
        "pool",
        entry("before", null(), "after", literal(rules.name)),
        "reason",
        entry("before", null(), "after", moved.c.pool_reason),
    )
    timeline = insert(AuditEvent).from_select(
        ["at", "entity", "entity_id", "customer_id", "action", "changes"],
        select(at, literal("customer"), moved.c.id, moved.c.id, literal("reclaimed"), changes),
    )
    # The webhook outbox rows ``ownership.record`` writes on the other path (ADR 0009).
    outbox = insert(WebhookEvent).from_select(
        ["event_id", "type", "occurred_at", "data", "dispatched"],
        select(
            cast(func.gen_random_uuid(), String),
            literal(webhooks.ownership_event_type("reclaimed"), String),
            at,
            entry(
                "customer_id",
                moved.c.id,
                "action",
                literal("reclaimed", String),
                "from_owner_id",
                moved.c.previous_owner_id,
                "to_owner_id",
                null(),
                "pool_id",
                literal(rules.pool_id, Integer),
                "actor_id",
                null(),
            ),
            false(),
        ),
    )
    summary = (
        select(
            moved.c.previous_owner_id,
            func.count(),
            func.array_agg(aggregate_order_by(moved.c.id, moved.c.id)),
            func.array_agg(aggregate_order_by(moved.c.name, moved.c.id)),
            func.array_agg(aggregate_order_by(moved.c.pool_reason, moved.c.id)),
        )
        .where(moved.c.previous_owner_id.is_not(None))
        .group_by(moved.c.previous_owner_id)
        .add_cte(history.cte("history"))
        .add_cte(timeline.cte("timeline"))
        .add_cte(outbox.cte("outbox"))
    )
    lost: dict[int, _Lost] = {}
    count = 0
    for owner, n, cids, names, reasons in (await session.execute(summary)).all():
        lost[owner] = _Lost(n, list(cids), list(zip(names[:5], reasons[:5], strict=True)))
        count += n
    log.info("reclaimed %d customers into pool %s", count, rules.pool_id)
    return lost


# --- warnings -----------------------------------------------------------------------------------


@dataclass
class Upcoming:
    customer_id: int
    owner_id: int
    name: str
    pool_id: int
    pool_name: str
    due_at: dt.datetime
    reason: str
    warned_due_at: dt.datetime | None


def _due_at(rules: RuleSet, row: Any) -> tuple[dt.datetime, str]:
    """When a customer falls due and under which rule (the earliest of its rules)."""
    received = row.owner_assigned_at or row.created_at
    best: tuple[dt.datetime, str] | None = None
    for kind, days, level_days in rules.rules:
        d = dict(level_days).get(row.level, days) if row.level else days
        last = {
            "no_follow_up": row.last_follow_up_at,
            "no_opportunity": row.last_opportunity_at,
            "no_deal": row.last_deal_at,
        }[kind]
        clock = max(received, last) if last is not None else received
        moment = clock + dt.timedelta(days=d)
        if best is None or moment < best[0]:
            best = (moment, rule_reason(kind, d))
    assert best is not None
    return best


async def upcoming_reclaims(
    session: AsyncSession,
    now: dt.datetime,
    *,
    owner_id: int | None = None,
    limit: int | None = None,
) -> list[Upcoming]:
    """Owned customers that fall due within their pool's warning period (not yet due)."""
    found: dict[int, Upcoming] = {}
    last_opportunity = (
        select(func.max(Opportunity.created_at))
        .where(Opportunity.customer_id == Customer.id)
        .scalar_subquery()
    )
    last_contract = (
        select(func.max(Contract.signed_at))
        .where(Contract.customer_id == Customer.id)
        .scalar_subquery()
    )
    for rules in await rule_sets(session):
        if rules.warning_days <= 0:
            continue
        if owner_id is not None and owner_id not in rules.member_ids:
            continue  # the pool's rules do not govern this owner
        soon, _ = due_condition(rules, now + dt.timedelta(days=rules.warning_days))
        due_now, _ = due_condition(rules, now)
        conditions = [soon, not_(due_now)]
        if owner_id is not None:
            conditions.append(Customer.owner_id == owner_id)
        stmt = select(
            Customer.id,
            Customer.owner_id,
            Customer.name,
            Customer.level,
            Customer.created_at,
            Customer.owner_assigned_at,
            Customer.last_follow_up_at,
            Customer.reclaim_warned_due_at,
            last_opportunity.label("last_opportunity_at"),
            func.coalesce(last_contract, Customer.signed_at).label("last_deal_at"),
        ).where(*conditions)
        for row in (await session.execute(stmt)).all():
            if row.id in found:
                continue  # an earlier pool governs it
            due_at, reason = _due_at(rules, row)
            found[row.id] = Upcoming(
                row.id,
                row.owner_id,
                row.name,
                rules.pool_id,
                rules.name,
                due_at,
                reason,
                row.reclaim_warned_due_at,
            )
    items = sorted(found.values(), key=lambda u: (u.due_at, u.customer_id))
    return items[:limit] if limit is not None else items


def days_left(due_at: dt.datetime, now: dt.datetime) -> int:
    return max(0, (due_at - now + dt.timedelta(hours=23, minutes=59)).days)


async def warn_of_reclaims(
    maker: async_sessionmaker[AsyncSession], *, now: dt.datetime | None = None
) -> int:
    """Push "3 customers go to the pool in 2 days" to owners, once per customer per warning
    period (a period is identified by the due moment: a new follow-up starts a new one)."""
    now = now or utcnow()
    async with transaction(maker) as session:
        fresh = [u for u in await upcoming_reclaims(session, now) if u.warned_due_at != u.due_at]
        if not fresh:
            return 0
        per_owner: dict[int, list[Upcoming]] = defaultdict(list)
        for u in fresh:
            per_owner[u.owner_id].append(u)
        drafts = []
        for owner, items in sorted(per_owner.items()):
            soonest = min(days_left(u.due_at, now) for u in items)
            drafts.append(
                notifications.Draft(
                    user_id=owner,
                    kind="reclaim_warning",
                    title=f"{len(items)} 个客户将在 {soonest} 天后进入公海",
                    body="；".join(
                        f"{u.name}（{days_left(u.due_at, now)} 天，{u.reason}）" for u in items[:5]
                    )
                    + ("等" if len(items) > 5 else ""),
                    link="/",
                    data={
                        "customer_ids": [u.customer_id for u in items],
                        "days_left": soonest,
                    },
                )
            )
        await notifications.deliver(session, drafts, now)
        table = Customer.__table__
        assert isinstance(table, Table)
        await (await session.connection()).execute(
            update(table)
            .where(table.c.id == bindparam("cid"))
            .values(reclaim_warned_due_at=bindparam("due")),
            [{"cid": u.customer_id, "due": u.due_at} for u in fresh],
        )
        return len(fresh)


async def reclaim_warnings_for(
    session: AsyncSession, principal: Principal, now: dt.datetime, limit: int = 50
) -> list[dict[str, Any]]:
    """The caller's customers going to a pool soon, with days left (for Today)."""
    return [
        {
            "customer_id": u.customer_id,
            "name": u.name,
            "pool_id": u.pool_id,
            "pool_name": u.pool_name,
            "due_at": u.due_at,
            "days_left": days_left(u.due_at, now),
            "reason": u.reason,
        }
        for u in await upcoming_reclaims(session, now, owner_id=principal.user_id, limit=limit)
    ]
