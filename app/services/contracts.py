"""Contracts: numbering, the status workflow with approval, signing into the orders ledger,
payment plans and payments (SPEC F1–F3)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import access
from app.access import Principal
from app.db import dialect_insert
from app.errors import Conflict, Forbidden, NotFound, ValidationFailed, field_error
from app.models import (
    Contract,
    ContractLine,
    Customer,
    Department,
    NumberSequence,
    Opportunity,
    Order,
    OrderLine,
    Payment,
    PaymentPlan,
    Product,
    User,
)
from app.models.base import utcnow
from app.schemas.contract import (
    ContractCreate,
    ContractUpdate,
    PaymentIn,
    PaymentPlanIn,
    TransitionIn,
)
from app.schemas.opportunity import from_cents, to_cents
from app.services import audit, opportunities
from app.services.pagination import fetch_page
from app.services.versions import check_version, flush_versioned

# action -> (statuses it may start from, status it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "submit": (frozenset({"draft", "rejected"}), "pending_approval"),
    "approve": (frozenset({"pending_approval"}), "approved"),
    "reject": (frozenset({"pending_approval"}), "rejected"),
    "sign": (frozenset({"approved"}), "signed"),
    "activate": (frozenset({"signed"}), "active"),
    "complete": (frozenset({"active"}), "completed"),
    "terminate": (frozenset({"signed", "active"}), "terminated"),
    "void": (frozenset({"draft", "pending_approval", "approved", "rejected"}), "void"),
}
EDITABLE = frozenset({"draft", "rejected"})
PAYABLE = frozenset({"signed", "active", "completed", "expired"})
DEFAULT_SEQUENCE = {"prefix": "HT", "date_format": "%Y%m", "padding": 4}


def _unused_sequence(name: str) -> dict[str, Any]:
    """A sequence that has given no number yet."""
    return {"name": name, **DEFAULT_SEQUENCE, "period": "", "last_value": 0}


async def next_number(
    session: AsyncSession, name: str = "contract", now: dt.datetime | None = None
) -> str:
    """Take the next number of a sequence atomically (one conditional UPDATE ... RETURNING)."""
    now = now or utcnow()
    sequence = await _sequence(session, name)
    period = now.strftime(sequence.date_format) if sequence.date_format else ""
    prefix, padding = sequence.prefix, sequence.padding
    value = (
        await session.execute(
            update(NumberSequence)
            .where(NumberSequence.name == name)
            .values(
                # The counter restarts with each new date part.
                last_value=case(
                    (NumberSequence.period == period, NumberSequence.last_value + 1), else_=1
                ),
                period=period,
            )
            .returning(NumberSequence.last_value)
        )
    ).scalar_one()
    return f"{prefix}{period}-{value:0{padding}d}"


async def _sequence(session: AsyncSession, name: str) -> NumberSequence:
    await session.execute(
        dialect_insert(session, NumberSequence)
        .values(**_unused_sequence(name))
        .on_conflict_do_nothing()
    )
    sequence = await session.get(NumberSequence, name)
    assert sequence is not None
    return sequence


def preview_number(sequence: NumberSequence, now: dt.datetime) -> str:
    period = now.strftime(sequence.date_format) if sequence.date_format else ""
    value = sequence.last_value + 1 if sequence.period == period else 1
    return f"{sequence.prefix}{period}-{value:0{sequence.padding}d}"


async def get_sequence(session: AsyncSession, name: str = "contract") -> dict[str, Any]:
    # A read: a sequence never used yet is shown with its defaults, not created.
    sequence = await session.get(NumberSequence, name) or NumberSequence(**_unused_sequence(name))
    return {
        "name": sequence.name,
        "prefix": sequence.prefix,
        "date_format": sequence.date_format,
        "padding": sequence.padding,
        "next_number": preview_number(sequence, utcnow()),
    }


async def set_sequence(session: AsyncSession, data: Any, name: str = "contract") -> dict[str, Any]:
    """Change the numbering; a changed date format restarts the counter, numbers stay unique
    because the contract number column is unique (a clash answers 409 when it happens)."""
    sequence = await _sequence(session, name)
    if (data.prefix, data.date_format) != (sequence.prefix, sequence.date_format):
        sequence.period = ""
        sequence.last_value = 0
    sequence.prefix, sequence.date_format, sequence.padding = (
        data.prefix,
        data.date_format,
        data.padding,
    )
    await session.flush()
    return await get_sequence(session, name)


def _log(
    session: AsyncSession,
    principal: Principal,
    contract: Contract,
    action: str,
    changes: dict[str, Any],
) -> None:
    audit.customer_event(
        session,
        principal.user_id,
        contract.customer_id,
        action,
        changes,
        entity="contract",
        entity_id=contract.id,
    )


async def create_contract(
    session: AsyncSession, principal: Principal, data: ContractCreate
) -> Contract:
    try:
        customer = await access.get_writable(session, principal, Customer, data.customer_id)
    except NotFound:
        raise ValidationFailed(
            errors=[field_error("customer_id", "no such customer in your data scope")]
        ) from None
    if data.opportunity_id is not None:
        opp = await session.scalar(
            select(Opportunity).where(
                Opportunity.id == data.opportunity_id,
                Opportunity.customer_id == customer.id,
                Opportunity.deleted_at.is_(None),
            )
        )
        if opp is None:
            raise ValidationFailed(
                errors=[field_error("opportunity_id", "not an opportunity of this customer")]
            )
    lines = await opportunities.resolve_lines(session, data.lines)
    amount = (
        to_cents(data.amount) if data.amount is not None else sum(q * p for _, q, p, _c in lines)
    )
    contract = Contract(
        number=await next_number(session),
        customer_id=customer.id,
        opportunity_id=data.opportunity_id,
        owner_id=principal.user_id,
        title=data.title,
        amount_cents=amount,
        start_date=data.start_date,
        end_date=data.end_date,
        notes=data.notes,
        status="draft",
    )
    session.add(contract)
    await session.flush()
    session.add_all(
        ContractLine(
            contract_id=contract.id,
            product_id=pid,
            quantity=q,
            unit_price_cents=p,
            unit_cost_cents=c,
        )
        for pid, q, p, c in lines
    )
    _log(
        session,
        principal,
        contract,
        "contract_created",
        {
            "number": {"before": None, "after": contract.number},
            "amount": {"before": None, "after": str(from_cents(amount))},
        },
    )
    await session.flush()
    return contract


async def update_contract(
    session: AsyncSession,
    principal: Principal,
    contract_id: int,
    version: int,
    data: ContractUpdate,
) -> Contract:
    contract = await access.get_writable(session, principal, Contract, contract_id)
    check_version(contract, version)
    if contract.status not in EDITABLE:
        raise Conflict(f"a {contract.status} contract changes only through its workflow actions")
    changes = data.model_dump(exclude_unset=True)
    start = changes.get("start_date", contract.start_date)
    end = changes.get("end_date", contract.end_date)
    if start and end and end < start:
        raise ValidationFailed(errors=[field_error("end_date", "must not come before start_date")])
    before = {
        "title": contract.title,
        "amount": str(from_cents(contract.amount_cents)),
        "start_date": audit.jsonable(contract.start_date),
        "end_date": audit.jsonable(contract.end_date),
    }
    if "lines" in changes:
        lines = await opportunities.resolve_lines(session, data.lines or [])
        await session.execute(delete(ContractLine).where(ContractLine.contract_id == contract.id))
        session.add_all(
            ContractLine(
                contract_id=contract.id,
                product_id=pid,
                quantity=q,
                unit_price_cents=p,
                unit_cost_cents=c,
            )
            for pid, q, p, c in lines
        )
        if "amount" not in changes:
            contract.amount_cents = sum(q * p for _, q, p, _c in lines)
    if "amount" in changes:
        contract.amount_cents = to_cents(changes["amount"])
    for key in ("title", "start_date", "end_date", "notes"):
        if key in changes:
            setattr(contract, key, changes[key])
    contract.updated_at = utcnow()
    after = {
        "title": contract.title,
        "amount": str(from_cents(contract.amount_cents)),
        "start_date": audit.jsonable(contract.start_date),
        "end_date": audit.jsonable(contract.end_date),
    }
    _log(session, principal, contract, "contract_updated", audit.diff(before, after))
    await flush_versioned(session)
    return contract


async def _may_approve(session: AsyncSession, principal: Principal, contract: Contract) -> bool:
    """The owner's department manager, or a holder of ``contract.approve`` — never the owner."""
    if contract.owner_id == principal.user_id:
        return False
    if principal.can("contract.approve"):
        return True
    manager = await session.scalar(
        select(Department.manager_id)
        .join(User, User.department_id == Department.id)
        .where(User.id == contract.owner_id)
    )
    return manager == principal.user_id


async def allowed_actions(
    session: AsyncSession, principal: Principal, contract: Contract, *, can_write: bool
) -> list[str]:
    actions = []
    for action, (sources, _target) in TRANSITIONS.items():
        if contract.status not in sources:
            continue
        if action in ("approve", "reject"):
            if await _may_approve(session, principal, contract):
                actions.append(action)
        elif can_write:
            actions.append(action)
    return actions


async def transition(
    session: AsyncSession,
    principal: Principal,
    contract_id: int,
    version: int,
    action: str,
    data: TransitionIn,
) -> Contract:
    now = utcnow()
    contract = await access.get_readable(session, principal, Contract, contract_id)
    check_version(contract, version)
    sources, target = TRANSITIONS[action]
    if contract.status not in sources:
        legal = [a for a, (s, _t) in TRANSITIONS.items() if contract.status in s]
        raise Conflict(
            f"cannot {action} a {contract.status} contract; allowed: {', '.join(legal) or 'none'}",
            allowed_actions=legal,
        )
    if action in ("approve", "reject"):
        if not await _may_approve(session, principal, contract):
            raise Forbidden("only the owner's department manager or an approver may decide")
        if action == "reject" and not (data.comment and data.comment.strip()):
            raise ValidationFailed(
                errors=[field_error("comment", "say why the contract is rejected")]
            )
        contract.decided_at = now
        contract.decided_by_id = principal.user_id
    else:
        writable = await session.scalar(
            select(Contract.id).where(
                Contract.id == contract.id, access.writable(principal, Contract)
            )
        )
        if writable is None:
            raise Forbidden("you may read but not change this contract")
    if action == "submit":
        if contract.amount_cents <= 0:
            raise ValidationFailed(errors=[field_error("amount", "a contract needs an amount")])
        contract.submitted_at = now
    before = contract.status
    contract.status = target
    contract.updated_at = now
    if action == "sign":
        await _on_signed(session, principal, contract, now)
    if action in ("void", "terminate"):
        await session.execute(
            update(PaymentPlan)
            .where(
                PaymentPlan.contract_id == contract.id,
                PaymentPlan.status.in_(("pending", "overdue")),
            )
            .values(status="void")
        )
    changes: dict[str, Any] = {"status": {"before": before, "after": target}}
    if data.comment:
        changes["comment"] = {"before": None, "after": data.comment}
    _log(session, principal, contract, f"contract_{action}", changes)
    await flush_versioned(session)
    return contract


async def _on_signed(
    session: AsyncSession, principal: Principal, contract: Contract, now: dt.datetime
) -> None:
    """F3: the customer becomes signed, a linked open opportunity is won, the order is booked."""
    contract.signed_at = now
    customer = await session.get(Customer, contract.customer_id)
    assert customer is not None
    if customer.deal_status != "signed":
        before = {"deal_status": customer.deal_status, "signed_at": None}
        customer.deal_status = "signed"
        customer.signed_at = now
        audit.customer_event(
            session,
            principal.user_id,
            customer.id,
            "updated",
            audit.diff(before, {"deal_status": "signed", "signed_at": now.isoformat()}),
        )
    if contract.opportunity_id is not None:
        opp = await session.get(Opportunity, contract.opportunity_id)
        if opp is not None and opp.status == "open" and opp.deleted_at is None:
            await opportunities.mark_won(
                session, principal, opp, now, note=f"合同 {contract.number} 签约"
            )
    lines = (
        await session.scalars(select(ContractLine).where(ContractLine.contract_id == contract.id))
    ).all()
    order = Order(
        customer_id=contract.customer_id,
        contract_id=contract.id,
        source="contract",
        ordered_at=now,
        amount_cents=contract.amount_cents,
        cost_cents=sum(line.unit_cost_cents * line.quantity for line in lines),
    )
    session.add(order)
    await session.flush()
    session.add_all(
        OrderLine(
            order_id=order.id,
            product_id=line.product_id,
            quantity=line.quantity,
            unit_price_cents=line.unit_price_cents,
            unit_cost_cents=line.unit_cost_cents,
        )
        for line in lines
    )


async def get_contract(session: AsyncSession, principal: Principal, contract_id: int) -> Contract:
    return await access.get_readable(session, principal, Contract, contract_id)


async def list_contracts(
    session: AsyncSession,
    principal: Principal,
    *,
    status: str | None,
    customer_id: int | None,
    owner_id: int | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Contract], str | None]:
    conditions: list[ColumnElement[bool]] = [access.readable(principal, Contract)]
    for column, value in (
        (Contract.status, status),
        (Contract.customer_id, customer_id),
        (Contract.owner_id, owner_id),
    ):
        if value is not None:
            conditions.append(column == value)
    return await fetch_page(
        session,
        Contract,
        conditions,
        Contract.updated_at,
        descending=True,
        cursor=cursor,
        limit=limit,
    )


# --- payment plans and payments ----------------------------------------------------------------


async def add_payment_plan(
    session: AsyncSession, principal: Principal, contract_id: int, data: PaymentPlanIn
) -> PaymentPlan:
    contract = await access.get_writable(session, principal, Contract, contract_id)
    if contract.status in ("void", "terminated", "completed", "expired"):
        raise Conflict(f"a {contract.status} contract takes no new instalments")
    planned = await session.scalar(
        select(func.coalesce(func.sum(PaymentPlan.amount_cents), 0)).where(
            PaymentPlan.contract_id == contract.id, PaymentPlan.status != "void"
        )
    )
    amount = to_cents(data.amount)
    if int(planned or 0) + amount > contract.amount_cents:
        raise ValidationFailed(
            errors=[
                field_error(
                    "amount",
                    f"instalments would exceed the contract amount"
                    f" {from_cents(contract.amount_cents)}"
                    f" (already planned: {from_cents(int(planned or 0))})",
                )
            ]
        )
    if contract.start_date and data.due_date < contract.start_date:
        raise ValidationFailed(errors=[field_error("due_date", "falls before the contract starts")])
    plan = PaymentPlan(
        contract_id=contract.id, due_date=data.due_date, amount_cents=amount, note=data.note
    )
    session.add(plan)
    await session.flush()
    _log(
        session,
        principal,
        contract,
        "payment_planned",
        {
            "due_date": {"before": None, "after": data.due_date.isoformat()},
            "amount": {"before": None, "after": str(data.amount)},
        },
    )
    return plan


def plan_status(plan: PaymentPlan, today: dt.date) -> str:
    if plan.status == "void":
        return "void"
    if plan.paid_cents >= plan.amount_cents:
        return "paid"
    if plan.due_date < today:
        return "overdue"
    return "partly_paid" if plan.paid_cents > 0 else "pending"


def plan_view(plan: PaymentPlan, today: dt.date | None = None) -> dict[str, Any]:
    return {
        "id": plan.id,
        "due_date": plan.due_date,
        "amount": from_cents(plan.amount_cents),
        "paid": from_cents(plan.paid_cents),
        "status": plan_status(plan, today or utcnow().date()),
        "note": plan.note,
    }


async def record_payment(
    session: AsyncSession, principal: Principal, contract_id: int, data: PaymentIn
) -> Payment:
    contract = await access.get_writable(session, principal, Contract, contract_id)
    if contract.status not in PAYABLE:
        raise Conflict(
            f"payments are recorded against signed contracts; this one is {contract.status}"
        )
    amount = to_cents(data.amount)
    received = await session.scalar(
        select(func.coalesce(func.sum(Payment.amount_cents), 0)).where(
            Payment.contract_id == contract.id
        )
    )
    if int(received or 0) + amount > contract.amount_cents:
        raise ValidationFailed(
            errors=[field_error("amount", "payments would exceed the contract amount")]
        )
    if data.received_on > utcnow().date() + dt.timedelta(days=1):
        raise ValidationFailed(
            errors=[field_error("received_on", "a payment cannot be received in the future")]
        )
    if data.plan_id is not None:
        plan = await session.scalar(
            select(PaymentPlan).where(
                PaymentPlan.id == data.plan_id, PaymentPlan.contract_id == contract.id
            )
        )
        if plan is None or plan.status == "void":
            raise ValidationFailed(
                errors=[field_error("plan_id", "not an open instalment of this contract")]
            )
        if plan.paid_cents + amount > plan.amount_cents:
            raise ValidationFailed(
                errors=[field_error("amount", "more than the instalment still owes")]
            )
        plan.paid_cents += amount
        plan.status = plan_status(plan, utcnow().date())
    payment = Payment(
        contract_id=contract.id,
        plan_id=data.plan_id,
        amount_cents=amount,
        received_on=data.received_on,
        method=data.method,
        note=data.note,
        created_by_id=principal.user_id,
    )
    session.add(payment)
    await session.flush()
    _log(
        session,
        principal,
        contract,
        "payment_received",
        {"amount": {"before": None, "after": str(data.amount)}},
    )
    return payment


async def contract_views(
    session: AsyncSession, principal: Principal, contracts: Sequence[Contract]
) -> list[dict[str, Any]]:
    if not contracts:
        return []
    ids = [c.id for c in contracts]
    customers = dict(
        (
            await session.execute(
                select(Customer.id, Customer.name).where(
                    Customer.id.in_({c.customer_id for c in contracts})
                )
            )
        ).all()
    )
    owners = dict(
        (
            await session.execute(
                select(User.id, User.display_name).where(
                    User.id.in_({c.owner_id for c in contracts})
                )
            )
        ).all()
    )
    writable = set(
        (
            await session.scalars(
                select(Contract.id).where(
                    Contract.id.in_(ids), access.writable(principal, Contract)
                )
            )
        ).all()
    )
    lines: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for line, name in (
        await session.execute(
            select(ContractLine, Product.name)
            .join(Product, Product.id == ContractLine.product_id)
            .where(ContractLine.contract_id.in_(ids))
            .order_by(ContractLine.id)
        )
    ).all():
        lines[line.contract_id].append(
            {
                "id": line.id,
                "product_id": line.product_id,
                "product_name": name,
                "quantity": line.quantity,
                "unit_price": from_cents(line.unit_price_cents),
                "total": from_cents(line.unit_price_cents * line.quantity),
            }
        )
    plans: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    today = utcnow().date()
    for plan in (
        await session.scalars(
            select(PaymentPlan)
            .where(PaymentPlan.contract_id.in_(ids))
            .order_by(PaymentPlan.due_date, PaymentPlan.id)
        )
    ).all():
        plans[plan.contract_id].append(plan_view(plan, today))
    payments: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for p in (
        await session.scalars(
            select(Payment)
            .where(Payment.contract_id.in_(ids))
            .order_by(Payment.received_on, Payment.id)
        )
    ).all():
        payments[p.contract_id].append(
            {
                "id": p.id,
                "plan_id": p.plan_id,
                "amount": from_cents(p.amount_cents),
                "received_on": p.received_on,
                "method": p.method,
                "note": p.note,
                "created_at": p.created_at,
            }
        )
    out = []
    for c in contracts:
        out.append(
            {
                "id": c.id,
                "number": c.number,
                "customer_id": c.customer_id,
                "customer_name": customers.get(c.customer_id, ""),
                "opportunity_id": c.opportunity_id,
                "owner": {"id": c.owner_id, "display_name": owners.get(c.owner_id, "")},
                "title": c.title,
                "amount": from_cents(c.amount_cents),
                "start_date": c.start_date,
                "end_date": c.end_date,
                "status": c.status,
                "notes": c.notes,
                "submitted_at": c.submitted_at,
                "decided_at": c.decided_at,
                "signed_at": c.signed_at,
                "lines": lines[c.id],
                "payment_plans": plans[c.id],
                "payments": payments[c.id],
                "paid": from_cents(sum(to_cents(p["amount"]) for p in payments[c.id])),
                "allowed_actions": await allowed_actions(
                    session, principal, c, can_write=c.id in writable
                ),
                "version": c.version,
                "created_at": c.created_at,
                "updated_at": c.updated_at,
            }
        )
    return out
