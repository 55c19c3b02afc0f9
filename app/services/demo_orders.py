"""Demo data for customer analytics: the repeat orders signed customers place after signing.

Each signed customer buys again at its own rhythm (level A more often than C), from bundles that
go together (subscription with the mobile module, the professional edition with implementation and
training ...), through a channel; some stop buying after a while (churn risk, RFM "at risk" and
"lost"). Written straight into the tables, deterministic for a given seed and "now".
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Customer, Order, OrderLine, Product

# (SKUs bought together, weight): the basket rules the analysis should find.
BUNDLES: tuple[tuple[tuple[str, ...], float], ...] = (
    (("SW-STD", "SW-MOB"), 22),
    (("SW-PRO", "SV-IMP"), 16),
    (("SW-PRO", "SV-IMP", "SV-TRN"), 10),
    (("SV-DATA", "SW-PRO"), 6),
    (("SW-MOB",), 14),
    (("SV-TRN",), 10),
    (("SW-STD",), 12),
    (("SV-IMP",), 10),
)
CHANNELS = (("直销", 50), ("线上商城", 30), ("代理商", 20))
# Mean days between orders by level.
GAP_DAYS = {"A": 45, "B": 80, "C": 130}


async def write_repeat_orders(session: AsyncSession, rng: random.Random, now: dt.datetime) -> int:
    """Add repeat orders for every signed customer; returns how many orders were written."""
    products = {
        sku: (pid, price, cost)
        for pid, sku, price, cost in (
            await session.execute(
                select(Product.id, Product.sku, Product.unit_price_cents, Product.unit_cost_cents)
            )
        ).all()
    }
    if not products:
        return 0
    signed = (
        await session.execute(
            select(Customer.id, Customer.signed_at, Customer.level)
            .where(Customer.signed_at.is_not(None), Customer.deleted_at.is_(None))
            .order_by(Customer.id)
        )
    ).all()
    next_order = int(await session.scalar(select(func.coalesce(func.max(Order.id), 0))) or 0) + 1
    bundles = [b for b, _w in BUNDLES if all(sku in products for sku in b)]
    weights = [w for b, w in BUNDLES if all(sku in products for sku in b)]
    orders: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    for customer_id, signed_at, level in signed:
        if signed_at is None:
            continue
        gap = GAP_DAYS.get(level or "C", 130)
        # A quarter of the customers stop buying at some point.
        stops_at = (
            signed_at + dt.timedelta(days=rng.uniform(60, 400)) if rng.random() < 0.25 else now
        )
        moment = signed_at + dt.timedelta(days=max(7.0, rng.expovariate(1 / gap)))
        while moment < min(now, stops_at):
            bundle = rng.choices(bundles, weights=weights)[0]
            amount = cost = 0
            for sku in bundle:
                pid, price, unit_cost = products[sku]
                quantity = rng.randint(2, 8) if sku.startswith("SV-IMP") else rng.randint(1, 3)
                amount += quantity * price
                cost += quantity * unit_cost
                lines.append(
                    {
                        "order_id": next_order,
                        "product_id": pid,
                        "quantity": quantity,
                        "unit_price_cents": price,
                        "unit_cost_cents": unit_cost,
                    }
                )
            orders.append(
                {
                    "id": next_order,
                    "customer_id": customer_id,
                    "contract_id": None,
                    "external_id": f"DEMO-{next_order:06d}",
                    "source": "api",
                    "channel": rng.choices(
                        [c for c, _w in CHANNELS], weights=[w for _c, w in CHANNELS]
                    )[0],
                    "ordered_at": moment,
                    "amount_cents": amount,
                    "cost_cents": cost,
                    "created_at": moment,
                }
            )
            next_order += 1
            moment += dt.timedelta(days=max(7.0, rng.gauss(gap, gap / 3)))
    for start in range(0, len(orders), 2000):
        await session.execute(insert(Order), orders[start : start + 2000])
    for start in range(0, len(lines), 2000):
        await session.execute(insert(OrderLine), lines[start : start + 2000])
    if orders and (await session.connection()).dialect.name == "postgresql":
        await session.execute(
            select(func.setval(func.pg_get_serial_sequence("orders", "id"), next_order - 1))
        )
    return len(orders)
