"""Fixtures for auto-tag rule tests: tags, custom fields and orders written to the tables."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from app.models import CustomerTag, CustomFieldDefinition, Order, Tag, TagGroup
from app.models.base import utcnow
from tests.factories import make_org


@pytest.fixture
async def org(maker):
    return await make_org(maker)


async def make_tags(
    maker, group: str, names: list[str], *, exclusive: bool = False
) -> dict[str, Tag]:
    async with maker() as session, session.begin():
        tag_group = TagGroup(name=group, exclusive=exclusive)
        session.add(tag_group)
        await session.flush()
        tags = {n: Tag(group_id=tag_group.id, name=n) for n in names}
        session.add_all(tags.values())
        await session.flush()
        return tags


async def make_custom_field(maker, key: str, type_: str, options: list[str] | None = None) -> None:
    async with maker() as session, session.begin():
        session.add(
            CustomFieldDefinition(key=key, label=key.title(), type=type_, options=options or [])
        )


async def give_tag(maker, customer: Any, tag: Tag) -> None:
    async with maker() as session, session.begin():
        session.add(CustomerTag(customer_id=customer.id, tag_id=tag.id))


async def add_orders(maker, customer: Any, days_ago: list[int], amount_cents: int = 10_000) -> None:
    now = utcnow()
    async with maker() as session, session.begin():
        session.add_all(
            Order(
                customer_id=customer.id,
                source="api",
                ordered_at=now - dt.timedelta(days=d),
                amount_cents=amount_cents,
            )
            for d in days_ago
        )


async def tag_rows(maker, tag: Tag) -> list[CustomerTag]:
    """Every span of ``tag`` ever recorded, oldest first."""
    async with maker() as session:
        rows = await session.scalars(
            select(CustomerTag).where(CustomerTag.tag_id == tag.id).order_by(CustomerTag.id)
        )
        return list(rows.all())


async def holders(maker, tag: Tag) -> set[int]:
    return {r.customer_id for r in await tag_rows(maker, tag) if r.removed_at is None}
