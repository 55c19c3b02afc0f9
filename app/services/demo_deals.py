"""Demo data for the sales side: products, a pipeline, opportunities with months of stage
history, contracts in every status with payment plans and payments, and the orders they booked.

Written straight into the tables (the database is empty when the demo is seeded), so a new user
opens a living funnel, forecast and dashboard at once. Deterministic for a given seed and "now".
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    Contract,
    ContractLine,
    Customer,
    LostReason,
    NumberSequence,
    Opportunity,
    OpportunityHistory,
    Order,
    OrderLine,
    Payment,
    PaymentPlan,
    Pipeline,
    PipelineStage,
    Product,
)

PRODUCTS = (
    ("CRM 标准版（年）", "SW-STD", "软件订阅", 6800_00, 1200_00),
    ("CRM 专业版（年）", "SW-PRO", "软件订阅", 19800_00, 3500_00),
    ("移动外勤模块", "SW-MOB", "软件订阅", 4800_00, 800_00),
    ("实施服务（人天）", "SV-IMP", "专业服务", 2500_00, 1400_00),
    ("数据迁移服务", "SV-DATA", "专业服务", 12000_00, 6000_00),
    ("培训课程", "SV-TRN", "专业服务", 3000_00, 1200_00),
)
LOST_REASONS = ("价格太高", "选择了竞品", "预算取消", "需求变化", "联系不上")
# name, probability, stale days, kind, forecast category
STAGES = (
    ("初步接洽", 10, 14, "open", "pipeline"),
    ("需求确认", 30, 14, "open", "pipeline"),
    ("方案报价", 50, 21, "open", "best_case"),
    ("商务谈判", 70, 21, "open", "commit"),
    ("赢单", 100, None, "won", "closed"),
    ("输单", 0, None, "lost", "omitted"),
    ("无效", 0, None, "invalid", "omitted"),
)


async def write_deals(
    session: AsyncSession,
    rng: random.Random,
    user_ids: dict[str, int],
    now: dt.datetime,
    count: int,
) -> None:
    products = []
    for name, sku, category, price, cost in PRODUCTS:
        product = Product(
            name=name,
            sku=sku,
            category=category,
            unit_price_cents=price,
            unit_cost_cents=cost,
            created_at=now,
            updated_at=now,
        )
        session.add(product)
        products.append(product)
    reasons = [LostReason(name=n, position=i) for i, n in enumerate(LOST_REASONS)]
    session.add_all(reasons)
    pipeline = Pipeline(name="标准销售流程", is_default=True, created_at=now, updated_at=now)
    session.add(pipeline)
    await session.flush()
    stages = []
    for position, (name, probability, stale, kind, category) in enumerate(STAGES):
        stage = PipelineStage(
            pipeline_id=pipeline.id,
            name=name,
            position=position,
            probability=probability,
            stale_days=stale,
            kind=kind,
            forecast_category=category,
        )
        session.add(stage)
        stages.append(stage)
    await session.flush()
    open_stages = stages[:4]
    won, lost = stages[4], stages[5]

    owned = (
        await session.execute(
            select(Customer.id, Customer.owner_id, Customer.created_at, Customer.signed_at)
            .where(Customer.owner_id.is_not(None))
            .order_by(Customer.id)
        )
    ).all()
    picks = rng.sample(owned, k=min(count, len(owned)))
    history: list[dict[str, Any]] = []
    contracts_by_month: dict[str, int] = {}
    for customer_id, owner_id, customer_created, customer_signed in picks:
        # Signed customers get the deal that signed them (closing when they signed); the others
        # an open or lost one. Customer rows themselves stay exactly as generated.
        closing: dt.datetime | None = None
        if customer_signed is not None:
            outcome = "won"
            closing = customer_signed
            created = max(customer_created, closing - dt.timedelta(days=rng.uniform(10, 90)))
        else:
            outcome = rng.choices(("open", "lost"), weights=(70, 30))[0]
            latest = now - dt.timedelta(days=2)
            created = customer_created + (latest - customer_created) * rng.random()
        lines = [
            (p, rng.choice((1, 1, 2, 3, 5)))
            for p in rng.sample(products, k=rng.choice((1, 1, 2, 3)))
        ]
        amount = sum(p.unit_price_cents * q for p, q in lines)
        close_date = (created + dt.timedelta(days=rng.randint(30, 120))).date()
        if closing is not None:
            close_date = closing.date()
        target = rng.randint(0, 3)
        moments = [created]
        if closing is not None:
            gap = (closing - created) / (target + 1)
            moments += [*(created + gap * (i + 1) for i in range(target)), closing]
        else:
            for _ in range(target):
                moments.append(moments[-1] + dt.timedelta(days=rng.uniform(2, 25)))
            if outcome == "lost":
                moments.append(moments[-1] + dt.timedelta(days=rng.uniform(2, 20)))
            if moments[-1] >= now:  # not yet happened: stop where today is
                moments = [m for m in moments if m < now]
                outcome = "open"
        steps = [open_stages[i] for i in range(min(len(moments), 4))]
        if outcome != "open":
            steps = [*steps[: len(moments) - 1], won if outcome == "won" else lost]
        last = steps[-1]
        opp = Opportunity(
            customer_id=customer_id,
            pipeline_id=pipeline.id,
            stage_id=last.id,
            owner_id=owner_id,
            title=f"{lines[0][0].name.split('（')[0]}采购",
            amount_cents=amount,
            expected_close_date=close_date,
            status=last.kind,
            lost_reason_id=rng.choice(reasons).id if outcome == "lost" else None,
            closed_at=moments[-1] if outcome != "open" else None,
            stage_entered_at=moments[len(steps) - 1],
            created_at=created,
            updated_at=moments[len(steps) - 1],
        )
        session.add(opp)
        await session.flush()
        for i, stage in enumerate(steps):
            history.append(
                {
                    "opportunity_id": opp.id,
                    "pipeline_id": pipeline.id,
                    "stage_id": stage.id,
                    "status": stage.kind,
                    "owner_id": owner_id,
                    "amount_cents": amount,
                    "expected_close_date": close_date,
                    "valid_from": moments[i],
                    "valid_to": moments[i + 1] if i + 1 < len(steps) else None,
                }
            )
        if outcome != "won" and (last.position == 3 or outcome == "lost") and rng.random() < 0.5:
            # Deals in negotiation carry a contract on its way; some lost ones a voided draft.
            started = moments[-1] + dt.timedelta(hours=2)
            month = started.strftime("%Y%m")
            contracts_by_month[month] = contracts_by_month.get(month, 0) + 1
            status = (
                "void"
                if outcome == "lost"
                else rng.choice(
                    ("draft", "pending_approval", "pending_approval", "approved", "rejected")
                )
            )
            session.add(
                Contract(
                    number=f"HT{month}-{contracts_by_month[month]:04d}",
                    customer_id=customer_id,
                    opportunity_id=opp.id,
                    owner_id=owner_id,
                    title=f"{opp.title}合同",
                    amount_cents=amount,
                    status=status,
                    submitted_at=started if status != "draft" else None,
                    created_at=started,
                    updated_at=started,
                )
            )
        if outcome == "won":
            signed = moments[-1]
            month = signed.strftime("%Y%m")
            contracts_by_month[month] = contracts_by_month.get(month, 0) + 1
            status = rng.choice(("signed", "active", "active", "completed"))
            contract = Contract(
                number=f"HT{month}-{contracts_by_month[month]:04d}",
                customer_id=customer_id,
                opportunity_id=opp.id,
                owner_id=owner_id,
                title=f"{opp.title}合同",
                amount_cents=amount,
                start_date=signed.date(),
                end_date=signed.date() + dt.timedelta(days=365),
                status=status,
                submitted_at=signed - dt.timedelta(days=3),
                decided_at=signed - dt.timedelta(days=2),
                signed_at=signed,
                created_at=signed - dt.timedelta(days=4),
                updated_at=signed,
            )
            session.add(contract)
            await session.flush()
            session.add_all(
                ContractLine(
                    contract_id=contract.id,
                    product_id=p.id,
                    quantity=q,
                    unit_price_cents=p.unit_price_cents,
                    unit_cost_cents=p.unit_cost_cents,
                )
                for p, q in lines
            )
            first_part = amount // 2
            plans = [
                PaymentPlan(
                    contract_id=contract.id,
                    due_date=signed.date() + dt.timedelta(days=15),
                    amount_cents=first_part,
                    created_at=signed,
                    updated_at=signed,
                ),
                PaymentPlan(
                    contract_id=contract.id,
                    due_date=signed.date() + dt.timedelta(days=90),
                    amount_cents=amount - first_part,
                    created_at=signed,
                    updated_at=signed,
                ),
            ]
            session.add_all(plans)
            await session.flush()
            for plan in plans:
                received = dt.datetime.combine(
                    plan.due_date, dt.time(10), tzinfo=dt.UTC
                ) - dt.timedelta(days=rng.randint(0, 5))
                if received < now and rng.random() < 0.85:
                    plan.paid_cents = plan.amount_cents
                    plan.status = "paid"
                    session.add(
                        Payment(
                            contract_id=contract.id,
                            plan_id=plan.id,
                            amount_cents=plan.amount_cents,
                            received_on=received.date(),
                            method="银行转账",
                            created_by_id=owner_id,
                            created_at=received,
                        )
                    )
                elif plan.due_date < now.date():
                    plan.status = "overdue"
            order = Order(
                customer_id=customer_id,
                contract_id=contract.id,
                source="contract",
                ordered_at=signed,
                amount_cents=amount,
                cost_cents=sum(p.unit_cost_cents * q for p, q in lines),
                created_at=signed,
            )
            session.add(order)
            await session.flush()
            session.add_all(
                OrderLine(
                    order_id=order.id,
                    product_id=p.id,
                    quantity=q,
                    unit_price_cents=p.unit_price_cents,
                    unit_cost_cents=p.unit_cost_cents,
                )
                for p, q in lines
            )
    if history:
        await session.execute(insert(OpportunityHistory), history)
    current = now.strftime("%Y%m")
    session.add(
        NumberSequence(
            name="contract",
            prefix="HT",
            date_format="%Y%m",
            padding=4,
            period=current,
            last_value=contracts_by_month.get(current, 0),
        )
    )
    await session.flush()
