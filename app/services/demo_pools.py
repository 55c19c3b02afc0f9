"""Demo data for the customer pools: two pools with rules, members and hidden fields, the demo's
unowned customers in them with their history, and owners with customers close to reclaim.

Owned customers that the rules would reclaim at once are given a recent "received" time, so the
first reclaim run of a fresh demo takes nothing by surprise; a few per rep fall due within the
warning period instead, which Today shows. Deterministic for a given seed and "now".
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Customer, Department, OwnershipEvent, Pool, PoolMember, PoolRule
from app.services import pools as pool_service

# (name, description, department, admin, rules, hidden fields, daily limit, cooling days,
#  exclude signed, provinces whose unowned customers sit in it)
_POOLS: tuple[tuple[Any, ...], ...] = (
    (
        "华东公海",
        "华东销售部（含杭州分部）的公海：30 天未跟进或半年未成交即收回",
        "华东销售部",
        "mgr1",
        (("no_follow_up", 30, {"A": 60, "C": 15}), ("no_deal", 180, {})),
        ["phones", "email", "contacts"],
        20,
        7,
        True,
        None,
    ),
    (
        "华南公海",
        "华南销售部的公海：45 天未跟进或 90 天没有新商机即收回",
        "华南销售部",
        "mgr3",
        (("no_follow_up", 45, {}), ("no_opportunity", 90, {"A": 120})),
        ["phones"],
        10,
        3,
        False,
        ("广东省", "福建省", "广西壮族自治区"),
    ),
)
_RELEASE_REASONS = ("客户暂无需求", "联系不上", "预算不足，明年再谈", "已选择竞品")


async def write_pools(
    session: AsyncSession, rng: random.Random, user_ids: dict[str, int], now: dt.datetime
) -> None:
    departments = dict((await session.execute(select(Department.name, Department.id))).all())
    pool_ids: list[int] = []
    south_pool = 0
    for name, description, dept, admin, rules, hidden, limit, cooling, exclude, provinces in _POOLS:
        pool = Pool(
            name=name,
            description=description,
            enabled=True,
            exclude_signed=exclude,
            exclude_open_opportunity=False,
            warning_days=3,
            daily_claim_limit=limit,
            cooling_days=cooling,
            hidden_fields=hidden,
        )
        session.add(pool)
        await session.flush()
        pool_ids.append(pool.id)
        if provinces:
            south_pool = pool.id
        session.add_all(
            PoolRule(pool_id=pool.id, kind=k, days=d, level_days=lv) for k, d, lv in rules
        )
        session.add_all(
            [
                PoolMember(pool_id=pool.id, role="admin", user_id=user_ids[admin]),
                PoolMember(pool_id=pool.id, role="member", department_id=departments[dept]),
            ]
        )
    await session.flush()
    south_provinces = set(_POOLS[1][9])

    # The demo's unowned customers go to the pool of their region, with how they got there.
    reps = {
        pool_ids[0]: [user_ids[u] for u in ("rep1", "rep2", "rep3", "rep4", "rep5")],
        pool_ids[1]: [user_ids[u] for u in ("rep6", "rep7", "rep8")],
    }
    unowned = (
        await session.execute(
            select(Customer.id, Customer.province, Customer.created_at)
            .where(Customer.owner_id.is_(None), Customer.deleted_at.is_(None))
            .order_by(Customer.id)
        )
    ).all()
    pooled: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for cid, province, created in unowned:
        pool_id = south_pool if province in south_provinces else pool_ids[0]
        previous = rng.choice(reps[pool_id])
        at = max(created, now - dt.timedelta(days=rng.uniform(1, 60)))
        if rng.random() < 0.6:
            action, reason = "reclaimed", pool_service.rule_reason("no_follow_up", 30)
        else:
            action, reason = "released", rng.choice(_RELEASE_REASONS)
        pooled.append({"cid": cid, "pool": pool_id, "at": at, "why": reason, "prev": previous})
        events.append(
            {
                "customer_id": cid,
                "at": at,
                "action": action,
                "from_owner_id": previous,
                "to_owner_id": None,
                "pool_id": pool_id,
                "actor_id": None if action == "reclaimed" else previous,
                "reason": reason,
            }
        )
    table = Customer.__table__
    assert isinstance(table, Table)
    if pooled:
        await (await session.connection()).execute(
            update(table)
            .where(table.c.id == bindparam("cid"))
            .values(
                pool_id=bindparam("pool"),
                pooled_at=bindparam("at"),
                pool_reason=bindparam("why"),
                previous_owner_id=bindparam("prev"),
                updated_at=table.c.updated_at,  # not the wall clock: the demo is deterministic
            ),
            pooled,
        )

    # Some owned customers were claimed from a pool in the last weeks (pool statistics).
    owned = (
        await session.execute(
            select(Customer.id, Customer.owner_id, Customer.created_at)
            .where(
                Customer.owner_id.in_([u for us in reps.values() for u in us]),
                Customer.deleted_at.is_(None),
            )
            .order_by(Customer.id)
        )
    ).all()
    rep_pool: dict[int, int] = {u: p for p, us in reps.items() for u in us}
    received: list[dict[str, Any]] = []
    for cid, owner, created in rng.sample(list(owned), min(60, len(owned))):
        at = max(created, now - dt.timedelta(days=rng.uniform(1, 28)))
        received.append({"cid": cid, "at": at})
        events.append(
            {
                "customer_id": cid,
                "at": at,
                "action": "claimed" if rng.random() < 0.7 else "assigned",
                "from_owner_id": None,
                "to_owner_id": owner,
                "pool_id": rep_pool[owner or 0],
                "actor_id": owner,
                "reason": None,
            }
        )
    if events:
        await session.execute(insert(OwnershipEvent), events)
    if received:
        await _set_received(session, received)
    await _settle_clocks(session, rng, now, user_ids)


async def _set_received(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    table = Customer.__table__
    assert isinstance(table, Table)
    await (await session.connection()).execute(
        update(table)
        .where(table.c.id == bindparam("cid"))
        .values(
            owner_assigned_at=bindparam("at"),
            reclaim_warned_due_at=None,
            updated_at=table.c.updated_at,  # not the wall clock: the demo is deterministic
        ),
        rows,
    )


async def _settle_clocks(
    session: AsyncSession, rng: random.Random, now: dt.datetime, user_ids: dict[str, int]
) -> None:
    """No owned customer is due at once; a few per rep fall due in 1–3 days."""
    for rules in await pool_service.rule_sets(session):
        due, _ = pool_service.due_condition(rules, now)
        rows = (
            await session.execute(
                select(Customer.id, Customer.owner_id, Customer.level, Customer.last_follow_up_at)
                .where(due)
                .order_by(Customer.id)
            )
        ).all()
        soon_per_owner: dict[int, int] = {}
        wanted = {user_ids["rep1"]: 3}
        settled: list[dict[str, Any]] = []
        for cid, owner_id, level, last_follow_up in rows:
            owner = owner_id or 0
            days = min(
                (dict(level_days).get(level, d) if level else d)
                for _kind, d, level_days in rules.rules
            )
            quiet = last_follow_up is None or last_follow_up < now - dt.timedelta(days=days)
            if quiet and soon_per_owner.get(owner, 0) < wanted.get(owner, 2):
                soon_per_owner[owner] = soon_per_owner.get(owner, 0) + 1
                ago = days - rng.choice((1, 2, 3)) + 0.5
            else:
                ago = rng.uniform(0, max(1, days - 5))
            settled.append({"cid": cid, "at": now - dt.timedelta(days=ago)})
        if settled:
            await _set_received(session, settled)
