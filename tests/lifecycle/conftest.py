"""Fixtures and row factories for the customer lifecycle tests (SPEC B4, B7–B10)."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import (
    Contract,
    Customer,
    FollowUp,
    Opportunity,
    OpportunityHistory,
    Order,
    Pipeline,
    PipelineStage,
    Reminder,
    User,
    Visit,
)
from app.models.base import utcnow
from tests.factories import make_org

_numbers = itertools.count(1)


@pytest.fixture
async def org(maker):
    return await make_org(maker)


async def reload(db: AsyncSession, model: type[Any], record_id: int) -> Any:
    """The row as committed now (ends the test session's snapshot first)."""
    await db.rollback()
    return await db.get(model, record_id, populate_existing=True)


async def rows(db: AsyncSession, stmt: Any) -> list[Any]:
    await db.rollback()
    return list((await db.execute(stmt)).all())


async def set_caps(
    maker: async_sessionmaker[AsyncSession],
    user: User,
    *,
    owned: int | None = None,
    locked: int | None = None,
) -> None:
    async with maker() as session, session.begin():
        row = await session.get(User, user.id)
        assert row is not None
        row.max_owned_customers = owned
        row.max_locked_customers = locked


async def make_stage(maker: async_sessionmaker[AsyncSession]) -> PipelineStage:
    async with maker() as session, session.begin():
        pipeline = Pipeline(name=f"流程{next(_numbers)}", is_default=True)
        session.add(pipeline)
        await session.flush()
        stage = PipelineStage(
            pipeline_id=pipeline.id, name="初步接洽", position=0, probability=10, kind="open"
        )
        session.add(stage)
        await session.flush()
        return stage


async def make_opportunity(
    maker: async_sessionmaker[AsyncSession],
    stage: PipelineStage,
    customer: Customer,
    owner: User,
    status: str = "open",
) -> Opportunity:
    now = utcnow()
    async with maker() as session, session.begin():
        opp = Opportunity(
            customer_id=customer.id,
            pipeline_id=stage.pipeline_id,
            stage_id=stage.id,
            owner_id=owner.id,
            title="年度采购",
            amount_cents=100_00,
            status=status,
            stage_entered_at=now,
        )
        session.add(opp)
        await session.flush()
        session.add(
            OpportunityHistory(
                opportunity_id=opp.id,
                pipeline_id=opp.pipeline_id,
                stage_id=opp.stage_id,
                status=status,
                owner_id=owner.id,
                amount_cents=opp.amount_cents,
                valid_from=now - dt.timedelta(days=1),
            )
        )
        return opp


async def make_contract(
    maker: async_sessionmaker[AsyncSession],
    customer: Customer,
    owner: User,
    status: str = "draft",
) -> Contract:
    async with maker() as session, session.begin():
        contract = Contract(
            number=f"HT-T{next(_numbers):05d}",
            customer_id=customer.id,
            owner_id=owner.id,
            title="供货合同",
            amount_cents=500_00,
            status=status,
        )
        session.add(contract)
        await session.flush()
        return contract


async def make_order(maker: async_sessionmaker[AsyncSession], customer: Customer) -> Order:
    async with maker() as session, session.begin():
        order = Order(
            customer_id=customer.id, source="api", ordered_at=utcnow(), amount_cents=99_00
        )
        session.add(order)
        await session.flush()
        return order


async def make_visit(
    maker: async_sessionmaker[AsyncSession],
    customer: Customer,
    owner: User,
    status: str = "planned",
    *,
    with_reminder: bool = True,
) -> Visit:
    starts = utcnow() + dt.timedelta(days=2)
    async with maker() as session, session.begin():
        visit = Visit(
            customer_id=customer.id,
            owner_id=owner.id,
            starts_at=starts,
            duration_minutes=60,
            status=status,
            reminder_offsets_minutes=[30],
        )
        session.add(visit)
        await session.flush()
        if with_reminder:
            session.add(
                Reminder(
                    user_id=owner.id,
                    kind="visit_reminder",
                    due_at=starts - dt.timedelta(minutes=30),
                    visit_id=visit.id,
                    customer_id=customer.id,
                    title="拜访提醒",
                )
            )
        return visit


async def make_follow_up(
    maker: async_sessionmaker[AsyncSession],
    customer: Customer,
    author: User,
    occurred_at: dt.datetime | None = None,
) -> FollowUp:
    async with maker() as session, session.begin():
        follow_up = FollowUp(
            customer_id=customer.id,
            author_id=author.id,
            type="call",
            content="电话沟通",
            occurred_at=occurred_at or utcnow(),
        )
        session.add(follow_up)
        await session.flush()
        return follow_up


async def put_in_bin(
    maker: async_sessionmaker[AsyncSession],
    customer: Customer,
    *,
    kind: str = "frozen",
    by: User | None = None,
    at: dt.datetime | None = None,
    reason: str | None = "暂无需求",
) -> None:
    async with maker() as session, session.begin():
        row = await session.get(Customer, customer.id)
        assert row is not None
        row.deleted_at = at or utcnow()
        row.deleted_by_id = by.id if by else None
        row.recycle_kind = kind
        row.recycle_reason = reason
