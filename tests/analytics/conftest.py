"""Helpers for analytics tests: orders, products and tag spans written straight to the tables."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pytest

from app.models import CustomerTag, Order, OrderLine, Product, Tag, TagGroup
from tests.factories import make_org

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def at(day: str, hour: int = 12) -> dt.datetime:
    """Noon (or ``hour``) of a calendar day in Asia/Shanghai, as an aware datetime."""
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=SHANGHAI)


@pytest.fixture
async def org(maker):
    return await make_org(maker)


async def make_products(maker, count: int = 3) -> list[Product]:
    async with maker() as session, session.begin():
        items = [
            Product(name=f"产品{i}", sku=f"P{i}", category="软件" if i % 2 else "服务")
            for i in range(1, count + 1)
        ]
        session.add_all(items)
        await session.flush()
        return items


async def add_order(
    maker,
    customer: Any,
    when: dt.datetime,
    amount_cents: int,
    cost_cents: int = 0,
    *,
    lines: Sequence[tuple[Product, int, int, int]] = (),
    channel: str | None = None,
) -> Order:
    """An order; ``lines`` are (product, quantity, unit price, unit cost)."""
    async with maker() as session, session.begin():
        order = Order(
            customer_id=customer.id,
            source="api",
            ordered_at=when,
            amount_cents=amount_cents,
            cost_cents=cost_cents,
            channel=channel,
        )
        session.add(order)
        await session.flush()
        session.add_all(
            OrderLine(
                order_id=order.id,
                product_id=product.id,
                quantity=quantity,
                unit_price_cents=price,
                unit_cost_cents=cost,
            )
            for product, quantity, price, cost in lines
        )
        return order


async def make_tags(maker, group: str, names: Sequence[str], *, exclusive: bool = False):
    async with maker() as session, session.begin():
        tag_group = TagGroup(name=group, exclusive=exclusive)
        session.add(tag_group)
        await session.flush()
        tags = [Tag(group_id=tag_group.id, name=n) for n in names]
        session.add_all(tags)
        await session.flush()
        return tag_group, {t.name: t for t in tags}


async def tag_span(
    maker, customer: Any, tag: Tag, added: dt.datetime, removed: dt.datetime | None = None
) -> None:
    async with maker() as session, session.begin():
        session.add(
            CustomerTag(customer_id=customer.id, tag_id=tag.id, added_at=added, removed_at=removed)
        )
