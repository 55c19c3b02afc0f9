"""Customer lifecycle (SPEC B7–B10, B4 merge): lock, recycle bin, transfer, team members, merge.

- Lock (B7): a locked customer is never reclaimed into a pool; how many customers an owner may
  lock is capped (``ownership.caps``).
- Recycle bin (B8): freezing, abandoning, deleting and merging all park a customer in the bin
  (``deleted_at`` set, ``recycle_kind`` saying why). Nothing else is touched, so restoring brings
  the customer back with its contacts, follow-ups, opportunities and history. The scheduled
  purge deletes for good what stayed in the bin past the retention period.
- Transfer and offboarding (B9) share one code path, ``_hand_over``: set-based UPDATEs of the
  customers (and, as asked, of their open opportunities, unfinished contracts and planned
  visits), ownership history, timeline events and one notification per party.
- Team members (B10): read or read-write access for other users, with an optional expiry;
  ``access`` honours them on every query.
- Merge (B4): every row that points at the duplicate moves to the kept customer in one UPDATE
  per table; the duplicate goes to the bin as ``merged``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    delete,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from app import access
from app.access import Principal
from app.db import chunks, dialect_insert, transaction
from app.errors import Conflict, Forbidden, NotFound, ValidationFailed, field_error
from app.models import (
    AuditEvent,
    Contact,
    Contract,
    Customer,
    CustomerPhone,
    CustomerTag,
    CustomerTeamMember,
    FollowUp,
    Opportunity,
    OpportunityHistory,
    Order,
    OwnershipEvent,
    Reminder,
    Tag,
    TagGroup,
    User,
    Visit,
)
from app.models.base import UTCDateTime, utcnow
from app.schemas.lifecycle import MemberIn, TransferIn
from app.services import audit, contracts, notifications, org, ownership
from app.services.customers import AUDITED_FIELDS
from app.services.normalize import escape_like
from app.services.ownership import Change
from app.services.pagination import MAX_LIMIT, decode_cursor, encode_cursor, keyset_after, order_by
from app.services.versions import flush_versioned

log = logging.getLogger("kehu.lifecycle")

# Contracts still in their workflow (any status a transition starts from); the rest are final.
OPEN_CONTRACT_STATUSES = frozenset(
    status for sources, _target in contracts.TRANSITIONS.values() for status in sources
)
# Ids per IN (...) list in bulk statements (well under every driver's parameter limit).
CHUNK = 1000


def _few(names: Sequence[str]) -> str:
    return "、".join(names[:3]) + ("等" if len(names) > 3 else "")


# --- lock (B7) -----------------------------------------------------------------------------------


async def lock(session: AsyncSession, principal: Principal, customer_id: int) -> Customer:
    """Lock a customer so it is never reclaimed; the owner's locked-customer cap applies.

    Locking a locked customer changes nothing (idempotent)."""
    customer = await access.get_writable(session, principal, Customer, customer_id)
    if customer.locked_at is not None:
        return customer
    if customer.owner_id is None:
        raise Conflict("only a customer with an owner can be locked")
    _, cap = await ownership.caps(session, customer.owner_id)
    if cap is not None:
        locked = await ownership.locked_count(session, customer.owner_id)
        if locked + 1 > cap:
            raise ownership.CapExceeded(
                f"the owner has locked {locked} of at most {cap} customers",
                cap=cap,
                locked=locked,
            )
    now = utcnow()
    customer.locked_at = now
    customer.locked_by_id = principal.user_id
    audit.customer_event(
        session,
        principal.user_id,
        customer.id,
        "locked",
        {"locked_at": {"before": None, "after": now.isoformat()}},
    )
    # Locking takes no If-Match: a lock or change racing this one is a 409 (found by Schemathesis).
    await flush_versioned(session, if_match=False)
    return customer


async def unlock(session: AsyncSession, principal: Principal, customer_id: int) -> Customer:
    """Unlock a customer (its pool's reclaim rules apply again); unlocking twice is a no-op."""
    customer = await access.get_writable(session, principal, Customer, customer_id)
    if customer.locked_at is None:
        return customer
    before = customer.locked_at
    customer.locked_at = None
    customer.locked_by_id = None
    audit.customer_event(
        session,
        principal.user_id,
        customer.id,
        "unlocked",
        {"locked_at": {"before": before.isoformat(), "after": None}},
    )
    await flush_versioned(session)
    return customer


# --- freeze / abandon / recycle bin / restore (B8) -----------------------------------------------


async def put_in_recycle_bin(
    session: AsyncSession, principal: Principal, customer_id: int, kind: str, reason: str
) -> None:
    """Freeze or abandon a customer (``kind``): it goes to the recycle bin with the reason.

    Its children (contacts, follow-ups, opportunities ...) stay as they are, so a restore brings
    everything back. A lock is dropped: a customer in the bin is nobody's to protect.
    """
    if kind not in ("frozen", "abandoned"):
        raise ValueError(f"not a recycle kind for this call: {kind}")
    customer = await access.get_writable(session, principal, Customer, customer_id)
    now = utcnow()
    customer.deleted_at = now
    customer.deleted_by_id = principal.user_id
    customer.recycle_kind = kind
    customer.recycle_reason = reason
    customer.locked_at = None
    customer.locked_by_id = None
    audit.customer_event(
        session,
        principal.user_id,
        customer.id,
        kind,
        {
            "recycle_kind": {"before": None, "after": kind},
            "recycle_reason": {"before": None, "after": reason},
        },
    )
    if customer.owner_id is not None and customer.owner_id != principal.user_id:
        verb = "冻结" if kind == "frozen" else "废弃"
        await notifications.deliver(
            session,
            [
                notifications.Draft(
                    user_id=customer.owner_id,
                    kind=f"customer_{kind}",
                    title=f"{principal.display_name} {verb}了客户 {customer.name}",
                    body=reason,
                    link="/recycle-bin",
                    data={"customer_id": customer.id, "actor_id": principal.user_id},
                )
            ],
            now,
        )
    await flush_versioned(session)


async def recycle_bin(
    session: AsyncSession,
    principal: Principal,
    *,
    q: str | None,
    kind: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Customers in the recycle bin the caller may read, most recently binned first."""
    limit = max(1, min(limit, MAX_LIMIT))
    # Rows binned before recycle_kind existed (or by a path that does not set it) were deleted.
    kind_col = func.coalesce(Customer.recycle_kind, "deleted")
    conditions: list[ColumnElement[bool]] = [
        Customer.deleted_at.is_not(None),
        access.readable(principal, Customer),
    ]
    if q and q.strip():
        conditions.append(Customer.name.ilike(f"%{escape_like(q.strip())}%", escape="\\"))
    if kind is not None:
        conditions.append(kind_col == kind)
    after = decode_cursor(cursor)
    if after is not None:
        conditions.append(
            keyset_after(Customer.deleted_at, Customer.id, after, descending=True, nullable=False)
        )
    deleter, owner = aliased(User), aliased(User)
    rows = (
        await session.execute(
            select(
                Customer.id,
                Customer.name,
                kind_col,
                Customer.recycle_reason,
                Customer.deleted_at,
                Customer.deleted_by_id,
                deleter.display_name,
                Customer.owner_id,
                owner.display_name,
                Customer.merged_into_id,
            )
            .outerjoin(deleter, deleter.id == Customer.deleted_by_id)
            .outerjoin(owner, owner.id == Customer.owner_id)
            .where(*conditions)
            .order_by(*order_by(Customer.deleted_at, Customer.id, descending=True, nullable=False))
            .limit(limit + 1)
        )
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        {
            "id": cid,
            "name": name,
            "recycle_kind": recycle_kind,
            "recycle_reason": reason,
            "deleted_at": deleted_at,
            "deleted_by": (
                {"id": deleted_by, "display_name": deleter_name}
                if deleted_by is not None and deleter_name is not None
                else None
            ),
            "owner": (
                {"id": owner_id, "display_name": owner_name}
                if owner_id is not None and owner_name is not None
                else None
            ),
            "merged_into_id": merged_into,
        }
        for (
            cid,
            name,
            recycle_kind,
            reason,
            deleted_at,
            deleted_by,
            deleter_name,
            owner_id,
            owner_name,
            merged_into,
        ) in rows
    ]
    next_cursor = encode_cursor(rows[-1][4], rows[-1][0]) if more else None
    return items, next_cursor


async def restore(session: AsyncSession, principal: Principal, customer_id: int) -> Customer:
    """Take a customer out of the recycle bin, with everything it had.

    404 unless it is in the bin and readable; 403 if read-only; 409 for a merged customer (its
    children live on in the customer it was merged into) or when the owner's cap is full.
    """
    row = (
        await session.execute(
            select(Customer, access.writable(principal, Customer).label("can_write")).where(
                Customer.id == customer_id,
                Customer.deleted_at.is_not(None),
                access.readable(principal, Customer),
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"customer {customer_id} is not in the recycle bin")
    customer, can_write = row
    if not can_write:
        raise Forbidden("you may read but not change this customer")
    if customer.recycle_kind == "merged":
        raise Conflict(
            f"the customer was merged into customer {customer.merged_into_id}; "
            "a merged customer cannot be restored",
            merged_into_id=customer.merged_into_id,
        )
    if customer.owner_id is not None:
        await ownership.check_owned_capacity(session, customer.owner_id, 1)
    before = {"recycle_kind": customer.recycle_kind or "deleted", "reason": customer.recycle_reason}
    customer.deleted_at = None
    customer.deleted_by_id = None
    customer.recycle_kind = None
    customer.recycle_reason = None
    audit.customer_event(
        session,
        principal.user_id,
        customer.id,
        "restored",
        {
            "recycle_kind": {"before": before["recycle_kind"], "after": None},
            "recycle_reason": {"before": before["reason"], "after": None},
        },
    )
    await flush_versioned(session)
    return customer


# --- transfer and offboarding (B9) ---------------------------------------------------------------


@dataclass(frozen=True)
class Moving:
    """A customer about to change owner, as it is now."""

    previous_owner_id: int
    name: str
    locked: bool


@dataclass
class HandOver:
    customers: list[int]
    opportunities: int = 0
    contracts: int = 0
    visits: int = 0


async def _reassign(
    session: AsyncSession,
    model: Any,
    condition: ColumnElement[bool],
    to_owner_id: int,
    now: dt.datetime,
) -> list[tuple[int, int, int]]:
    """Give the ``model`` rows matching ``condition`` to the new owner (set-based); returns
    ``(id, customer_id, previous owner)`` of each row moved."""
    rows = [
        (rid, cid, prev)
        for rid, cid, prev in (
            await session.execute(
                select(model.id, model.customer_id, model.owner_id)
                .where(condition, model.owner_id != to_owner_id)
                .order_by(model.id)
            )
        ).all()
    ]
    for chunk in chunks([r[0] for r in rows], CHUNK):
        await session.execute(
            update(model)
            .where(model.id.in_(chunk))
            .values(owner_id=to_owner_id, updated_at=now, version=model.version + 1)
            .execution_options(synchronize_session=False)
        )
    return rows


async def _hand_over(
    session: AsyncSession,
    principal: Principal,
    moving: Mapping[int, Moving],
    to_owner: User,
    *,
    opportunities: ColumnElement[bool] | None,
    contracts: ColumnElement[bool] | None,
    visits: ColumnElement[bool] | None,
    previous_owner_access: str,
    reason: str | None,
    notify_previous: bool,
) -> HandOver:
    """Give customers (and the children picked by the conditions) to ``to_owner``.

    The one code path of transfer and offboarding. Customers get the new owner and a fresh
    reclaim clock (``owner_assigned_at``); a lock is dropped, since the new owner's locked cap
    was never checked for it. Opportunity owner history gets a new interval. Each previous
    owner may stay on as a team member. Ownership history, timeline events and notifications
    are written in bulk.
    """
    now = utcnow()
    ids = list(moving)
    to_id = to_owner.id
    by_previous: dict[int, list[int]] = defaultdict(list)
    for cid, m in moving.items():
        by_previous[m.previous_owner_id].append(cid)
    changed = 0
    for prev, cids in sorted(by_previous.items()):
        for chunk in chunks(cids, CHUNK):
            # Still owned by whom the caller saw: a concurrent transfer or reclaim makes the
            # counts differ, and the whole hand-over is refused rather than half applied.
            updated = await session.execute(
                update(Customer)
                .where(Customer.id.in_(chunk), Customer.owner_id == prev)
                .values(
                    owner_id=to_id,
                    owner_assigned_at=now,
                    reclaim_warned_due_at=None,
                    locked_at=None,
                    locked_by_id=None,
                    updated_at=now,
                    version=Customer.version + 1,
                )
                .execution_options(synchronize_session=False)
            )
            changed += int(getattr(updated, "rowcount", 0) or 0)
    if changed != len(ids):
        raise Conflict("some of the customers changed owner meanwhile; reload and try again")
    for chunk in chunks(ids, CHUNK):
        # The new owner has the customer now; a team membership of theirs would be redundant.
        await session.execute(
            delete(CustomerTeamMember).where(
                CustomerTeamMember.customer_id.in_(chunk), CustomerTeamMember.user_id == to_id
            )
        )
    result = HandOver(customers=ids)
    events: list[dict[str, Any]] = []

    if opportunities is not None:
        opp_rows = await _reassign(
            session,
            Opportunity,
            and_(opportunities, Opportunity.status == "open", Opportunity.deleted_at.is_(None)),
            to_id,
            now,
        )
        result.opportunities = len(opp_rows)
        for chunk in chunks([r[0] for r in opp_rows], CHUNK):
            # Owner history is kept as validity intervals (funnel snapshots read them).
            await session.execute(
                update(OpportunityHistory)
                .where(
                    OpportunityHistory.opportunity_id.in_(chunk),
                    OpportunityHistory.valid_to.is_(None),
                )
                .values(valid_to=now)
            )
            await session.execute(
                insert(OpportunityHistory).from_select(
                    [
                        "opportunity_id",
                        "pipeline_id",
                        "stage_id",
                        "status",
                        "owner_id",
                        "amount_cents",
                        "expected_close_date",
                        "valid_from",
                    ],
                    select(
                        Opportunity.id,
                        Opportunity.pipeline_id,
                        Opportunity.stage_id,
                        Opportunity.status,
                        Opportunity.owner_id,
                        Opportunity.amount_cents,
                        Opportunity.expected_close_date,
                        literal(now, UTCDateTime()),
                    ).where(Opportunity.id.in_(chunk)),
                )
            )
        events += [
            audit.customer_event_row(
                principal.user_id,
                cid,
                "opportunity_transferred",
                {"owner_id": {"before": prev, "after": to_id}},
                now,
                entity="opportunity",
                entity_id=oid,
            )
            for oid, cid, prev in opp_rows
        ]

    if contracts is not None:
        contract_rows = await _reassign(
            session,
            Contract,
            and_(contracts, Contract.status.in_(sorted(OPEN_CONTRACT_STATUSES))),
            to_id,
            now,
        )
        result.contracts = len(contract_rows)
        events += [
            audit.customer_event_row(
                principal.user_id,
                cid,
                "contract_transferred",
                {"owner_id": {"before": prev, "after": to_id}},
                now,
                entity="contract",
                entity_id=kid,
            )
            for kid, cid, prev in contract_rows
        ]

    if visits is not None:
        visit_rows = await _reassign(
            session, Visit, and_(visits, Visit.status == "planned"), to_id, now
        )
        result.visits = len(visit_rows)
        for chunk in chunks([r[0] for r in visit_rows], CHUNK):
            # Their reminders now go to whoever makes the visit.
            await session.execute(
                update(Reminder)
                .where(Reminder.visit_id.in_(chunk), Reminder.state == "pending")
                .values(user_id=to_id)
            )

    if previous_owner_access != "none":
        rows = [
            {
                "customer_id": cid,
                "user_id": m.previous_owner_id,
                "access": previous_owner_access,
                "expires_at": None,
                "created_at": now,
            }
            for cid, m in moving.items()
            if m.previous_owner_id != to_id
        ]
        for start in range(0, len(rows), CHUNK // 5):
            stmt = dialect_insert(session, CustomerTeamMember).values(
                rows[start : start + CHUNK // 5]
            )
            await session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["customer_id", "user_id"],
                    set_={"access": stmt.excluded.access, "expires_at": None},
                )
            )

    await ownership.record(
        session,
        [
            Change(cid, "transferred", m.previous_owner_id, to_id, None, reason)
            for cid, m in moving.items()
        ],
        actor_id=principal.user_id,
        at=now,
    )
    for cid, m in moving.items():
        changes: dict[str, Any] = {"owner_id": {"before": m.previous_owner_id, "after": to_id}}
        if m.locked:
            changes["locked"] = {"before": True, "after": False}
        if reason:
            changes["reason"] = {"before": None, "after": reason}
        if previous_owner_access != "none":
            changes["previous_owner_access"] = {"before": None, "after": previous_owner_access}
        events.append(audit.customer_event_row(principal.user_id, cid, "transferred", changes, now))
    await audit.record_rows(session, events)

    drafts: list[notifications.Draft] = []
    names = [m.name for m in moving.values()]
    link = f"/customers/{ids[0]}" if len(ids) == 1 else "/customers"
    if to_id != principal.user_id:
        drafts.append(
            notifications.Draft(
                user_id=to_id,
                kind="customers_transferred",
                title=f"{principal.display_name} 将 {len(ids)} 个客户转移给你",
                body=_few(names),
                link=link,
                data={
                    "customer_ids": ids[:100],
                    "count": len(ids),
                    "actor_id": principal.user_id,
                    "reason": reason,
                },
            )
        )
    if notify_previous:
        for prev, cids in sorted(by_previous.items()):
            if prev in (principal.user_id, to_id):
                continue
            drafts.append(
                notifications.Draft(
                    user_id=prev,
                    kind="customers_transferred_away",
                    title=f"{principal.display_name} 将你的 {len(cids)} 个客户转移给 "
                    f"{to_owner.display_name}",
                    body=_few([moving[c].name for c in cids]),
                    link=f"/customers/{cids[0]}" if len(cids) == 1 else "/customers",
                    data={
                        "customer_ids": cids[:100],
                        "count": len(cids),
                        "actor_id": principal.user_id,
                        "to_owner_id": to_id,
                    },
                )
            )
    await notifications.deliver(session, drafts, now)
    return result


def _owned_by_previous(model: Any, moving: Mapping[int, Moving]) -> ColumnElement[bool]:
    """Rows of ``model`` on the moving customers that their previous owner owns."""
    by_previous: dict[int, list[int]] = defaultdict(list)
    for cid, m in moving.items():
        by_previous[m.previous_owner_id].append(cid)
    return or_(
        *(
            and_(model.customer_id.in_(cids), model.owner_id == prev)
            for prev, cids in sorted(by_previous.items())
        )
    )


async def transfer(session: AsyncSession, principal: Principal, data: TransferIn) -> list[int]:
    """Give customers to another owner in one transaction: all or nothing (B9).

    Every customer must be live and writable for the caller (404 naming the first that is not
    found; 403 if one is read-only); the new owner must be an active user inside the caller's
    data scope (422); the new owner's cap must hold the customers not yet theirs (409).
    Customers they already own are skipped. Returns the ids that changed owner.
    """
    ids = list(data.customer_ids)
    rows = {
        cid: (owner_id, name, locked_at, can_write)
        for cid, owner_id, name, locked_at, can_write in (
            await session.execute(
                select(
                    Customer.id,
                    Customer.owner_id,
                    Customer.name,
                    Customer.locked_at,
                    access.writable(principal, Customer).label("can_write"),
                ).where(
                    Customer.id.in_(ids),
                    Customer.deleted_at.is_(None),
                    access.readable(principal, Customer),
                )
            )
        ).all()
    }
    for cid in ids:
        if cid not in rows:
            raise NotFound(f"customer {cid} not found")
    for cid in ids:
        if not rows[cid][3]:
            raise Forbidden(f"you may read but not change customer {cid}")
    to_owner = await session.scalar(
        select(User).where(
            User.id == data.to_owner_id,
            User.is_active.is_(True),
            access.owner_in_scope(principal, "customer", User.id),
        )
    )
    if to_owner is None:
        raise ValidationFailed(
            errors=[field_error("to_owner_id", "no such active user in your data scope")]
        )
    for cid in ids:
        if rows[cid][0] is None:
            raise Conflict(
                f"customer {cid} has no owner (it sits in a pool); assign it from the pool",
                customer_id=cid,
            )
    moving: dict[int, Moving] = {}
    for cid in ids:
        owner_id, name, locked_at, _ = rows[cid]
        if owner_id is not None and owner_id != to_owner.id:
            moving[cid] = Moving(owner_id, name, locked_at is not None)
    if not moving:
        return []
    await ownership.check_owned_capacity(session, to_owner.id, len(moving))
    include = set(data.include)
    await _hand_over(
        session,
        principal,
        moving,
        to_owner,
        opportunities=(
            _owned_by_previous(Opportunity, moving) if "opportunities" in include else None
        ),
        contracts=_owned_by_previous(Contract, moving) if "contracts" in include else None,
        visits=None,
        previous_owner_access=data.previous_owner_access,
        reason=None,
        notify_previous=True,
    )
    return list(moving)


async def offboard(
    session: AsyncSession, principal: Principal, user_id: int, to_owner_id: int
) -> HandOver:
    """Hand everything a leaving user owns to ``to_owner_id`` and deactivate them (B9).

    Their customers (live and in the recycle bin), open opportunities, unfinished contracts and
    planned visits (with pending reminders) go to the new owner in one transaction. Caps do not
    block an offboarding: the work has to go somewhere, and the receiving owner's manager can
    redistribute it with a transfer afterwards. The leaving user is deactivated and their
    refresh tokens are revoked (``org.deactivate_user``).
    """
    leaving = await session.scalar(select(User).where(User.id == user_id))
    if leaving is None:
        raise NotFound(f"user {user_id} not found")
    if user_id == principal.user_id:
        raise Conflict("you cannot offboard yourself")
    if to_owner_id == user_id:
        raise ValidationFailed(
            errors=[field_error("to_owner_id", "must be someone other than the leaving user")]
        )
    to_owner = await session.scalar(
        select(User).where(User.id == to_owner_id, User.is_active.is_(True))
    )
    if to_owner is None:
        raise ValidationFailed(errors=[field_error("to_owner_id", "no such active user")])
    moving = {
        cid: Moving(user_id, name, locked_at is not None)
        for cid, name, locked_at in (
            await session.execute(
                select(Customer.id, Customer.name, Customer.locked_at)
                .where(Customer.owner_id == user_id)
                .order_by(Customer.id)
            )
        ).all()
    }
    result = await _hand_over(
        session,
        principal,
        moving,
        to_owner,
        opportunities=Opportunity.owner_id == user_id,
        contracts=Contract.owner_id == user_id,
        visits=Visit.owner_id == user_id,
        previous_owner_access="none",
        reason="offboarded",
        notify_previous=False,
    )
    await org.deactivate_user(session, leaving)
    await session.flush()
    return result


# --- team members (B10) --------------------------------------------------------------------------


def _member_view(member: CustomerTeamMember, display_name: str) -> dict[str, Any]:
    return {
        "user": {"id": member.user_id, "display_name": display_name},
        "access": member.access,
        "expires_at": member.expires_at,
        "created_at": member.created_at,
    }


async def list_members(
    session: AsyncSession, principal: Principal, customer_id: int
) -> list[dict[str, Any]]:
    """The customer's current (unexpired) team members, earliest added first."""
    await access.get_readable(session, principal, Customer, customer_id)
    rows = await session.execute(
        select(CustomerTeamMember, User.display_name)
        .join(User, User.id == CustomerTeamMember.user_id)
        .where(CustomerTeamMember.customer_id == customer_id, access.unexpired_member(utcnow()))
        .order_by(CustomerTeamMember.created_at, CustomerTeamMember.id)
    )
    return [_member_view(m, name) for m, name in rows.all()]


async def put_member(
    session: AsyncSession, principal: Principal, customer_id: int, data: MemberIn
) -> dict[str, Any]:
    """Add a team member, or replace an existing member's access and expiry."""
    customer = await access.get_writable(session, principal, Customer, customer_id)
    user = await session.scalar(
        select(User).where(User.id == data.user_id, User.is_active.is_(True))
    )
    if user is None:
        raise ValidationFailed(errors=[field_error("user_id", "no such active user")])
    if user.id == customer.owner_id:
        raise ValidationFailed(errors=[field_error("user_id", "the owner has full access already")])
    now = utcnow()
    before = (
        await session.execute(
            select(CustomerTeamMember.access, CustomerTeamMember.expires_at).where(
                CustomerTeamMember.customer_id == customer.id,
                CustomerTeamMember.user_id == user.id,
            )
        )
    ).first()
    stmt = dialect_insert(session, CustomerTeamMember).values(
        customer_id=customer.id,
        user_id=user.id,
        access=data.access,
        expires_at=data.expires_at,
        created_at=now,
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["customer_id", "user_id"],
            set_={"access": stmt.excluded.access, "expires_at": stmt.excluded.expires_at},
        )
    )
    after = {"access": data.access, "expires_at": audit.jsonable(data.expires_at)}
    audit.customer_event(
        session,
        principal.user_id,
        customer.id,
        "member_added" if before is None else "member_changed",
        {
            "member": {
                "before": (
                    None
                    if before is None
                    else {"access": before[0], "expires_at": audit.jsonable(before[1])}
                ),
                "after": {"user_id": user.id, "display_name": user.display_name, **after},
            }
        },
    )
    if before is None and user.id != principal.user_id:
        await notifications.deliver(
            session,
            [
                notifications.Draft(
                    user_id=user.id,
                    kind="customer_shared",
                    title=f"{principal.display_name} 把你加入了客户 {customer.name} 的团队",
                    body="可编辑" if data.access == "write" else "可查看",
                    link=f"/customers/{customer.id}",
                    data={"customer_id": customer.id, "access": data.access},
                )
            ],
            now,
        )
    member = await session.scalar(
        select(CustomerTeamMember)
        .where(CustomerTeamMember.customer_id == customer.id, CustomerTeamMember.user_id == user.id)
        .execution_options(populate_existing=True)
    )
    assert member is not None
    return _member_view(member, user.display_name)


async def remove_member(
    session: AsyncSession, principal: Principal, customer_id: int, user_id: int
) -> None:
    """Take a user off the customer's team (404 if they are not on it)."""
    customer = await access.get_writable(session, principal, Customer, customer_id)
    removed = (
        await session.execute(
            delete(CustomerTeamMember)
            .where(
                CustomerTeamMember.customer_id == customer.id,
                CustomerTeamMember.user_id == user_id,
            )
            .returning(CustomerTeamMember.access)
        )
    ).first()
    if removed is None:
        raise NotFound(f"user {user_id} is not a team member of customer {customer_id}")
    audit.customer_event(
        session,
        principal.user_id,
        customer.id,
        "member_removed",
        {"member": {"before": {"user_id": user_id, "access": removed[0]}, "after": None}},
    )
    await session.flush()


# --- merge (B4) ----------------------------------------------------------------------------------

# Fields copied from the duplicate when the kept customer has no value.
_FILLED_FIELDS = (
    "email",
    "province",
    "city",
    "address",
    "industry",
    "source",
    "level",
    "gender",
    "birth_date",
    "notes",
    "next_follow_up_at",
)


def _fill_from(kept: Customer, other: Customer) -> None:
    """Give ``kept`` what only ``other`` knows: empty fields, phones, custom fields, the deal."""
    for name in _FILLED_FIELDS:
        if getattr(kept, name) in (None, "") and getattr(other, name) not in (None, ""):
            setattr(kept, name, getattr(other, name))
            if name == "email":
                kept.email_normalized = other.email_normalized
    if kept.lat is None and other.lat is not None and other.lng is not None:
        kept.lat, kept.lng = other.lat, other.lng
    phones = list(kept.phones or [])
    phones += [p for p in other.phones or [] if p not in phones]
    if phones != list(kept.phones or []):
        kept.phones = phones
    if other.custom_fields:
        merged = {**other.custom_fields, **(kept.custom_fields or {})}
        if merged != kept.custom_fields:
            kept.custom_fields = merged
    if other.deal_status == "signed":
        if kept.deal_status != "signed":
            kept.deal_status, kept.signed_at = "signed", other.signed_at
        elif other.signed_at is not None and (
            kept.signed_at is None or other.signed_at < kept.signed_at
        ):
            kept.signed_at = other.signed_at
    # The follow-ups move over, so the last one is the later of the two.
    if other.last_follow_up_at is not None and (
        kept.last_follow_up_at is None or other.last_follow_up_at > kept.last_follow_up_at
    ):
        kept.last_follow_up_at = other.last_follow_up_at


async def _merge_team(session: AsyncSession, kept: Customer, other: Customer) -> None:
    """Union of both teams; where a user is on both, the wider access and later expiry win."""
    theirs = aliased(CustomerTeamMember)

    def on_other(*conditions: ColumnElement[bool]) -> Any:
        return exists().where(
            theirs.customer_id == other.id,
            theirs.user_id == CustomerTeamMember.user_id,
            *conditions,
        )

    on_kept = CustomerTeamMember.customer_id == kept.id
    await session.execute(
        update(CustomerTeamMember)
        .where(on_kept, CustomerTeamMember.access != "write", on_other(theirs.access == "write"))
        .values(access="write")
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(CustomerTeamMember)
        .where(
            on_kept,
            CustomerTeamMember.expires_at.is_not(None),
            on_other(theirs.expires_at > CustomerTeamMember.expires_at),
        )
        .values(
            expires_at=select(theirs.expires_at)
            .where(theirs.customer_id == other.id, theirs.user_id == CustomerTeamMember.user_id)
            .scalar_subquery()
        )
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(CustomerTeamMember)
        .where(on_kept, on_other(theirs.expires_at.is_(None)))
        .values(expires_at=None)
        .execution_options(synchronize_session=False)
    )
    # Members only the duplicate had move over (never its new owner); the rest are dropped.
    kept_users = select(theirs.user_id).where(theirs.customer_id == kept.id)
    moving = [
        CustomerTeamMember.customer_id == other.id,
        CustomerTeamMember.user_id.not_in(kept_users),
    ]
    if kept.owner_id is not None:
        moving.append(CustomerTeamMember.user_id != kept.owner_id)
    await session.execute(
        update(CustomerTeamMember)
        .where(*moving)
        .values(customer_id=kept.id)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        delete(CustomerTeamMember)
        .where(CustomerTeamMember.customer_id == other.id)
        .execution_options(synchronize_session=False)
    )


async def _merge_tags(
    session: AsyncSession, actor_id: int, kept: Customer, other: Customer, now: dt.datetime
) -> None:
    """Move the duplicate's tag rows (current and past) to the kept customer. Its current tags
    the kept one has already, or that would make a second tag of an exclusive group, are
    closed first (history rows are never deleted)."""
    kept_tags = aliased(CustomerTag)
    kept_active = select(kept_tags.tag_id).where(
        kept_tags.customer_id == kept.id, kept_tags.removed_at.is_(None)
    )
    kept_exclusive_groups = (
        select(Tag.group_id)
        .join(TagGroup, TagGroup.id == Tag.group_id)
        .where(TagGroup.exclusive.is_(True), Tag.id.in_(kept_active))
    )
    await session.execute(
        update(CustomerTag)
        .where(
            CustomerTag.customer_id == other.id,
            CustomerTag.removed_at.is_(None),
            or_(
                CustomerTag.tag_id.in_(kept_active),
                CustomerTag.tag_id.in_(
                    select(Tag.id).where(Tag.group_id.in_(kept_exclusive_groups))
                ),
            ),
        )
        .values(removed_at=now, removed_by_id=actor_id)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(CustomerTag)
        .where(CustomerTag.customer_id == other.id)
        .values(customer_id=kept.id)
        .execution_options(synchronize_session=False)
    )


async def merge(
    session: AsyncSession, principal: Principal, kept_id: int, other_id: int
) -> Customer:
    """Merge customer ``other_id`` into ``kept_id`` (B4): children and history move over, empty
    fields of the kept customer are filled, the duplicate goes to the recycle bin as merged.

    Every table with a ``customer_id`` is handled, each in one set-based statement:

    moved to the kept customer
        contacts, follow_ups, visits, opportunities, contracts, orders, reminders,
        customer_phones (contact numbers; the customer's own numbers are re-indexed from the
        merged phone list), customer_tags (current and history; see ``_merge_tags``),
        customer_team_members (union; see ``_merge_team``), audit_events (the duplicate's
        timeline joins the kept one's), customer_ownership_events; and customers.merged_into_id
        of customers merged into the duplicate earlier.
    deliberately left
        notifications (no customer column; their ``data``/``link`` are a record of what was
        said), opportunity_history, payment_plans, payments, contract_lines, order_lines (they
        hang off opportunities, contracts and orders, which moved).
    """
    if kept_id == other_id:
        raise ValidationFailed(
            errors=[field_error("other_id", "cannot merge a customer into itself")]
        )
    kept = await access.get_writable(session, principal, Customer, kept_id)
    other = await access.get_writable(session, principal, Customer, other_id)
    now = utcnow()
    before = audit.snapshot(kept, AUDITED_FIELDS)
    _fill_from(kept, other)
    changes = audit.diff(before, audit.snapshot(kept, AUDITED_FIELDS))
    kept.updated_at = now  # bumps the version even if no field changed: it gained children
    other.deleted_at = now
    other.deleted_by_id = principal.user_id
    other.recycle_kind = "merged"
    other.recycle_reason = None
    other.merged_into_id = kept.id
    other.locked_at = None
    other.locked_by_id = None
    # Both rows are written (and their versions checked) before any child moves.
    await flush_versioned(session)

    def moved(model: Any, *, versioned: bool = False) -> Any:
        values: dict[str, Any] = {"customer_id": kept.id}
        if versioned:
            values.update(updated_at=now, version=model.version + 1)
        return (
            update(model)
            .where(model.customer_id == other.id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    for model, versioned in (
        (Contact, True),
        (FollowUp, False),
        (Visit, True),
        (Opportunity, True),
        (Contract, True),
        (Order, False),
        (Reminder, False),
        (CustomerPhone, False),
        (AuditEvent, False),
        (OwnershipEvent, False),
    ):
        await session.execute(moved(model, versioned=versioned))
    # The customer's own numbers (contact_id NULL) are re-indexed from the merged phone list.
    await session.execute(
        delete(CustomerPhone).where(
            CustomerPhone.customer_id == kept.id, CustomerPhone.contact_id.is_(None)
        )
    )
    if kept.phones:
        await session.execute(
            insert(CustomerPhone), [{"customer_id": kept.id, "number": n} for n in kept.phones]
        )
    await _merge_tags(session, principal.user_id, kept, other, now)
    await _merge_team(session, kept, other)
    await session.execute(
        update(Customer)
        .where(Customer.merged_into_id == other.id)
        .values(merged_into_id=kept.id)
        .execution_options(synchronize_session=False)
    )

    await ownership.record(
        session,
        [Change(other.id, "merged", other.owner_id, kept.owner_id, None, f"into {kept.id}")],
        actor_id=principal.user_id,
        at=now,
    )
    await audit.record_rows(
        session,
        [
            audit.customer_event_row(
                principal.user_id,
                kept.id,
                "merged",
                {"merged_from": {"before": None, "after": other.id}, **changes},
                now,
            ),
            audit.customer_event_row(
                principal.user_id,
                other.id,
                "merged",
                {
                    "merged_into_id": {"before": None, "after": kept.id},
                    "recycle_kind": {"before": None, "after": "merged"},
                },
                now,
            ),
        ],
    )
    owners = {kept.owner_id, other.owner_id} - {None, principal.user_id}
    await notifications.deliver(
        session,
        [
            notifications.Draft(
                user_id=uid,
                kind="customers_merged",
                title=f"{principal.display_name} 将客户 {other.name} 合并到 {kept.name}",
                body="联系人、跟进、商机、合同等已并入保留的客户",
                link=f"/customers/{kept.id}",
                data={"customer_id": kept.id, "merged_id": other.id},
            )
            for uid in sorted(u for u in owners if u is not None)
        ],
        now,
    )
    await flush_versioned(session)
    return kept


# --- scheduled housekeeping ----------------------------------------------------------------------


async def purge_recycle_bin(
    maker: async_sessionmaker[AsyncSession], *, retention_days: int, now: dt.datetime | None = None
) -> int:
    """Delete for good the customers in the recycle bin longer than the retention period.

    Customers with contracts or orders stay: those are financial records (they remain in the
    bin, restorable, and are reported in the log).
    """
    now = now or utcnow()
    cutoff = now - dt.timedelta(days=retention_days)
    async with transaction(maker) as session:
        expired = Customer.deleted_at < cutoff
        kept = await session.scalar(
            select(Customer.id)
            .where(
                expired,
                exists().where(Contract.customer_id == Customer.id)
                | exists().where(Order.customer_id == Customer.id),
            )
            .limit(1)
        )
        result = await session.execute(
            delete(Customer)
            .where(
                expired,
                not_(exists().where(Contract.customer_id == Customer.id)),
                not_(exists().where(Order.customer_id == Customer.id)),
            )
            .execution_options(synchronize_session=False)
        )
        purged = int(getattr(result, "rowcount", 0) or 0)
    if purged or kept:
        log.info("purged %d customers from the recycle bin (some kept: %s)", purged, bool(kept))
    return purged


async def remove_expired_team_members(
    maker: async_sessionmaker[AsyncSession], *, now: dt.datetime | None = None
) -> int:
    """Drop team memberships past their expiry (access already ignores them; this tidies up)."""
    now = now or utcnow()
    async with transaction(maker) as session:
        result = await session.execute(
            delete(CustomerTeamMember).where(
                CustomerTeamMember.expires_at.is_not(None), CustomerTeamMember.expires_at <= now
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)
