"""Ownership: who owned a customer when (history rows) and how many one user may own or lock.

Every change of owner or pool — claim, assign, release, reclaim, transfer, move, merge — records
one ``OwnershipEvent``; pool statistics (C6) and the cooling period (C4) read them. Caps (B7) come
from the user (if set) or else the most generous of their roles; no value anywhere means no cap.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict
from app.models import Customer, OwnershipEvent, Role, User, user_roles
from app.services import webhooks


class CapExceeded(Conflict):
    slug, title = "cap-exceeded", "Customer cap reached"


@dataclass(frozen=True)
class Change:
    customer_id: int
    action: str
    from_owner_id: int | None
    to_owner_id: int | None
    pool_id: int | None = None
    reason: str | None = None


async def record(
    session: AsyncSession, changes: Sequence[Change], *, actor_id: int | None, at: dt.datetime
) -> None:
    """Append the history rows of a set of changes in one statement."""
    if not changes:
        return
    await session.execute(
        insert(OwnershipEvent),
        [
            {
                "customer_id": c.customer_id,
                "at": at,
                "action": c.action,
                "from_owner_id": c.from_owner_id,
                "to_owner_id": c.to_owner_id,
                "pool_id": c.pool_id,
                "actor_id": actor_id,
                "reason": c.reason,
            }
            for c in changes
        ],
    )
    outbox = (
        webhooks.from_ownership(
            c.customer_id, c.action, c.from_owner_id, c.to_owner_id, c.pool_id, actor_id, at
        )
        for c in changes
    )
    await webhooks.emit(session, [e for e in outbox if e is not None])


async def caps(session: AsyncSession, user_id: int) -> tuple[int | None, int | None]:
    """(max owned, max locked) customers for a user: the user's own values, else the largest
    among their roles; None means unlimited."""
    row = (
        await session.execute(
            select(User.max_owned_customers, User.max_locked_customers).where(User.id == user_id)
        )
    ).one()
    role_caps = (
        await session.execute(
            select(Role.max_owned_customers, Role.max_locked_customers)
            .join(user_roles, user_roles.c.role_id == Role.id)
            .where(user_roles.c.user_id == user_id)
        )
    ).all()

    def pick(own: int | None, from_roles: list[int | None]) -> int | None:
        if own is not None:
            return own
        if not from_roles or any(v is None for v in from_roles):
            return None  # a role without a cap lets the user own without limit
        return max(v for v in from_roles if v is not None)

    return (
        pick(row[0], [r[0] for r in role_caps]),
        pick(row[1], [r[1] for r in role_caps]),
    )


async def owned_count(session: AsyncSession, user_id: int) -> int:
    """Live customers the user owns (the recycle bin does not count)."""
    return int(
        await session.scalar(
            select(func.count())
            .select_from(Customer)
            .where(Customer.owner_id == user_id, Customer.deleted_at.is_(None))
        )
        or 0
    )


async def locked_count(session: AsyncSession, user_id: int) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(Customer)
            .where(
                Customer.owner_id == user_id,
                Customer.deleted_at.is_(None),
                Customer.locked_at.is_not(None),
            )
        )
        or 0
    )


async def check_owned_capacity(session: AsyncSession, user_id: int, adding: int) -> None:
    """CapExceeded (409, with the cap) unless the user can own ``adding`` more customers."""
    if adding <= 0:
        return
    cap, _ = await caps(session, user_id)
    if cap is None:
        return
    owned = await owned_count(session, user_id)
    if owned + adding > cap:
        raise CapExceeded(
            f"user {user_id} owns {owned} of at most {cap} customers; {adding} more do not fit",
            cap=cap,
            owned=owned,
        )


async def owned_room(session: AsyncSession, user_id: int) -> int | None:
    """How many more customers the user may own (None: no cap)."""
    cap, _ = await caps(session, user_id)
    if cap is None:
        return None
    return max(0, cap - await owned_count(session, user_id))
