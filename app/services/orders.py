"""The orders ledger: orders recorded one by one or in bulk (up to 10,000 per call), idempotent
per external order id; signed contracts record theirs in services.contracts.

Orders are facts, not editable records: an order is recorded against a customer the caller may
change and read by anyone who may read the customer. Bulk recording is set-based — customers,
products and known external ids are each checked with a few IN queries, then orders and lines
go in with multi-row INSERTs — and all or nothing: any invalid order rejects the call (422, every
problem listed by index) and records nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import access
from app.access import Principal
from app.db import chunks
from app.errors import Conflict, ValidationFailed, field_error
from app.models import Customer, Order, OrderLine, Product
from app.schemas.opportunity import from_cents, to_cents
from app.schemas.order import OrderIn
from app.services.pagination import fetch_page

# Rows per IN list / multi-row INSERT (asyncpg binds at most 32,767 parameters per statement).
CHUNK = 2000
MAX_ERRORS = 100


@dataclass
class Recorded:
    index: int
    id: int
    external_id: str | None
    status: str  # "created" | "existing"


async def _ids_in(session: AsyncSession, stmt_for: Any, ids: Sequence[Any]) -> list[Any]:
    rows: list[Any] = []
    for chunk in chunks(ids, CHUNK):
        rows += (await session.execute(stmt_for(chunk))).all()
    return rows


async def record_orders(
    session: AsyncSession, principal: Principal, orders: Sequence[OrderIn], *, source: str = "api"
) -> list[Recorded]:
    """Record orders; an order whose external id is known already is answered, not repeated."""
    customer_ids = sorted({o.customer_id for o in orders})
    writable = {
        cid
        for (cid,) in await _ids_in(
            session,
            lambda chunk: select(Customer.id).where(
                Customer.id.in_(chunk),
                Customer.deleted_at.is_(None),
                access.readable(principal, Customer),
                access.writable(principal, Customer),
            ),
            customer_ids,
        )
    }
    product_ids = sorted({line.product_id for o in orders for line in o.lines})
    products = {
        pid: (price, cost)
        for pid, price, cost in await _ids_in(
            session,
            lambda chunk: select(
                Product.id, Product.unit_price_cents, Product.unit_cost_cents
            ).where(Product.id.in_(chunk)),
            product_ids,
        )
    }
    external_ids = [o.external_id for o in orders if o.external_id is not None]
    known = {
        ext: (oid, cid)
        for ext, oid, cid in await _ids_in(
            session,
            lambda chunk: select(Order.external_id, Order.id, Order.customer_id).where(
                Order.external_id.in_(chunk)
            ),
            sorted(set(external_ids)),
        )
    }

    errors: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, order in enumerate(orders):
        where = f"orders[{i}]"
        if order.customer_id not in writable:
            errors.append(
                field_error(f"{where}.customer_id", "no such customer you may record orders for")
            )
        for j, line in enumerate(order.lines):
            if line.product_id not in products:
                errors.append(field_error(f"{where}.lines[{j}].product_id", "no such product"))
        ext = order.external_id
        if ext is not None:
            if ext in seen:
                errors.append(field_error(f"{where}.external_id", f"repeats orders[{seen[ext]}]"))
            seen.setdefault(ext, i)
            if ext in known and known[ext][1] != order.customer_id:
                errors.append(
                    field_error(f"{where}.external_id", "recorded already for another customer")
                )
    if errors:
        raise ValidationFailed(
            f"{len(errors)} problem(s); nothing was recorded", errors=errors[:MAX_ERRORS]
        )

    results: list[Recorded] = []
    new: list[tuple[int, OrderIn, list[dict[str, int]]]] = []
    for i, order in enumerate(orders):
        if order.external_id is not None and order.external_id in known:
            oid = known[order.external_id][0]
            results.append(Recorded(i, oid, order.external_id, "existing"))
            continue
        lines = []
        for line in order.lines:
            price, cost = products[line.product_id]
            lines.append(
                {
                    "product_id": line.product_id,
                    "quantity": line.quantity,
                    "unit_price_cents": price
                    if line.unit_price is None
                    else to_cents(line.unit_price),
                    "unit_cost_cents": cost if line.unit_cost is None else to_cents(line.unit_cost),
                }
            )
        new.append((i, order, lines))

    try:
        for batch in chunks(new, CHUNK // 4):
            ids = (
                await session.scalars(
                    insert(Order).returning(Order.id, sort_by_parameter_order=True),
                    [
                        {
                            "customer_id": order.customer_id,
                            "external_id": order.external_id,
                            "source": source,
                            "channel": order.channel,
                            "ordered_at": order.ordered_at,
                            "amount_cents": _total(lines, "unit_price_cents"),
                            "cost_cents": _total(lines, "unit_cost_cents"),
                        }
                        for _, order, lines in batch
                    ],
                )
            ).all()
            line_rows = [
                {"order_id": oid, **line}
                for oid, (_, _, lines) in zip(ids, batch, strict=True)
                for line in lines
            ]
            for line_batch in chunks(line_rows, CHUNK):
                await session.execute(insert(OrderLine), list(line_batch))
            results += [
                Recorded(i, oid, order.external_id, "created")
                for oid, (i, order, _) in zip(ids, batch, strict=True)
            ]
    except IntegrityError:
        # Another call recorded one of these external ids meanwhile: this one changes nothing.
        raise Conflict(
            "some external order ids were recorded by a concurrent request; send again to get "
            "them answered as existing"
        ) from None
    results.sort(key=lambda r: r.index)
    return results


def _total(lines: Sequence[dict[str, int]], unit: str) -> int:
    return sum(line["quantity"] * line[unit] for line in lines)


async def order_views(session: AsyncSession, orders: Sequence[Order]) -> list[dict[str, Any]]:
    """Orders with their lines (one query for the lines of all)."""
    lines: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if orders:
        for line in (
            await session.scalars(
                select(OrderLine)
                .where(OrderLine.order_id.in_([o.id for o in orders]))
                .order_by(OrderLine.id)
            )
        ).all():
            lines[line.order_id].append(
                {
                    "product_id": line.product_id,
                    "quantity": line.quantity,
                    "unit_price": from_cents(line.unit_price_cents),
                    "unit_cost": from_cents(line.unit_cost_cents),
                }
            )
    return [
        {
            "id": o.id,
            "customer_id": o.customer_id,
            "contract_id": o.contract_id,
            "external_id": o.external_id,
            "source": o.source,
            "channel": o.channel,
            "ordered_at": o.ordered_at,
            "amount": from_cents(o.amount_cents),
            "cost": from_cents(o.cost_cents),
            "lines": lines[o.id],
            "created_at": o.created_at,
        }
        for o in orders
    ]


async def get_order(session: AsyncSession, principal: Principal, order_id: int) -> Order:
    return await access.get_readable(session, principal, Order, order_id)


async def list_orders(
    session: AsyncSession,
    principal: Principal,
    *,
    customer_id: int | None,
    channel: str | None,
    ordered_from: dt.datetime | None,
    ordered_to: dt.datetime | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Order], str | None]:
    """Orders of customers the caller may read, newest first."""
    conditions = [access.readable(principal, Order)]
    if customer_id is not None:
        conditions.append(Order.customer_id == customer_id)
    if channel is not None:
        conditions.append(Order.channel == channel)
    if ordered_from is not None:
        conditions.append(Order.ordered_at >= ordered_from)
    if ordered_to is not None:
        conditions.append(Order.ordered_at < ordered_to)
    return await fetch_page(
        session, Order, conditions, Order.ordered_at, descending=True, cursor=cursor, limit=limit
    )
