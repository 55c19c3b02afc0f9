"""Products, pipelines, lost reasons, opportunities and their history (SPEC E1, E2)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import access
from app.access import Principal
from app.errors import Conflict, NotFound, ValidationFailed, field_error
from app.models import (
    Customer,
    LostReason,
    Opportunity,
    OpportunityHistory,
    OpportunityLine,
    Pipeline,
    PipelineStage,
    Product,
    User,
)
from app.models.base import utcnow
from app.schemas.opportunity import (
    LineIn,
    LoseIn,
    LostReasonIn,
    OpportunityCreate,
    OpportunityUpdate,
    PipelineCreate,
    PipelineUpdate,
    ProductCreate,
    ProductUpdate,
    StageIn,
    StageMove,
    StageUpdate,
    WinIn,
    from_cents,
    to_cents,
)
from app.services import audit
from app.services.pagination import fetch_page
from app.services.versions import check_version, flush_versioned

DEFAULT_CATEGORY = {"open": "pipeline", "won": "closed", "lost": "omitted", "invalid": "omitted"}
END_STAGES = (("赢单", 100, "won"), ("输单", 0, "lost"), ("无效", 0, "invalid"))


def weighted_cents(amount_cents: int, probability: int) -> int:
    """Amount × win probability, rounded half up to the cent."""
    return (amount_cents * probability + 50) // 100


# --- products ----------------------------------------------------------------------------------


def product_view(p: Product) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "sku": p.sku,
        "category": p.category,
        "unit_price": from_cents(p.unit_price_cents),
        "unit_cost": from_cents(p.unit_cost_cents),
        "active": p.active,
        "version": p.version,
    }


async def list_products(session: AsyncSession, *, active: bool | None) -> list[Product]:
    stmt = select(Product).order_by(Product.name, Product.id)
    if active is not None:
        stmt = stmt.where(Product.active.is_(active))
    return list((await session.scalars(stmt)).all())


async def get_product(session: AsyncSession, product_id: int) -> Product:
    product = await session.get(Product, product_id)
    if product is None:
        raise NotFound(f"product {product_id} not found")
    return product


async def _sku_free(session: AsyncSession, sku: str | None, except_id: int | None = None) -> None:
    if sku is None:
        return
    other = await session.scalar(select(Product.id).where(Product.sku == sku))
    if other is not None and other != except_id:
        raise Conflict(f"SKU {sku!r} is taken", errors=[field_error("sku", "taken")])


async def create_product(session: AsyncSession, data: ProductCreate) -> Product:
    await _sku_free(session, data.sku)
    product = Product(
        name=data.name,
        sku=data.sku,
        category=data.category,
        active=data.active,
        unit_price_cents=to_cents(data.unit_price),
        unit_cost_cents=to_cents(data.unit_cost),
    )
    session.add(product)
    await session.flush()
    return product


async def update_product(
    session: AsyncSession, product_id: int, version: int, data: ProductUpdate
) -> Product:
    product = await get_product(session, product_id)
    check_version(product, version)
    changes = data.model_dump(exclude_unset=True)
    for key in ("name", "unit_price", "unit_cost", "active"):
        if key in changes and changes[key] is None:
            raise ValidationFailed(errors=[field_error(key, "cannot be null")])
    if "sku" in changes:
        await _sku_free(session, changes["sku"], product.id)
    for key, value in changes.items():
        if key in ("unit_price", "unit_cost"):
            setattr(product, f"{key}_cents", to_cents(value))
        else:
            setattr(product, key, value)
    await flush_versioned(session)
    return product


# --- lost reasons ------------------------------------------------------------------------------


async def list_lost_reasons(session: AsyncSession) -> list[LostReason]:
    rows = await session.scalars(select(LostReason).order_by(LostReason.position, LostReason.id))
    return list(rows.all())


async def create_lost_reason(session: AsyncSession, data: LostReasonIn) -> LostReason:
    if await session.scalar(select(LostReason.id).where(LostReason.name == data.name)):
        raise Conflict(f"lost reason {data.name!r} exists", errors=[field_error("name", "taken")])
    reason = LostReason(**data.model_dump())
    session.add(reason)
    await session.flush()
    return reason


# --- pipelines ---------------------------------------------------------------------------------


async def stages_of(
    session: AsyncSession, pipeline_ids: Sequence[int]
) -> dict[int, list[PipelineStage]]:
    result: dict[int, list[PipelineStage]] = {pid: [] for pid in pipeline_ids}
    rows = await session.scalars(
        select(PipelineStage)
        .where(PipelineStage.pipeline_id.in_(pipeline_ids))
        .order_by(PipelineStage.position, PipelineStage.id)
    )
    for stage in rows.all():
        result[stage.pipeline_id].append(stage)
    return result


async def list_pipelines(session: AsyncSession) -> list[tuple[Pipeline, list[PipelineStage]]]:
    pipelines = list((await session.scalars(select(Pipeline).order_by(Pipeline.id))).all())
    stages = await stages_of(session, [p.id for p in pipelines])
    return [(p, stages[p.id]) for p in pipelines]


async def get_pipeline(
    session: AsyncSession, pipeline_id: int
) -> tuple[Pipeline, list[PipelineStage]]:
    pipeline = await session.get(Pipeline, pipeline_id)
    if pipeline is None:
        raise NotFound(f"pipeline {pipeline_id} not found")
    return pipeline, (await stages_of(session, [pipeline_id]))[pipeline_id]


def _stage(pipeline_id: int, position: int, data: StageIn) -> PipelineStage:
    return PipelineStage(
        pipeline_id=pipeline_id,
        name=data.name,
        position=position,
        probability=data.probability,
        stale_days=data.stale_days,
        kind=data.kind,
        forecast_category=data.forecast_category or DEFAULT_CATEGORY[data.kind],
    )


async def _set_default(session: AsyncSession, pipeline: Pipeline) -> None:
    await session.execute(
        update(Pipeline).where(Pipeline.id != pipeline.id).values(is_default=False)
    )
    pipeline.is_default = True


async def create_pipeline(
    session: AsyncSession, data: PipelineCreate
) -> tuple[Pipeline, list[PipelineStage]]:
    if await session.scalar(select(Pipeline.id).where(Pipeline.name == data.name)):
        raise Conflict(f"pipeline {data.name!r} exists", errors=[field_error("name", "taken")])
    names = [s.name for s in data.stages]
    if len(set(names)) != len(names):
        raise ValidationFailed(errors=[field_error("stages", "stage names must be distinct")])
    kinds = [s.kind for s in data.stages]
    if "open" not in kinds:
        raise ValidationFailed(errors=[field_error("stages", "a pipeline needs an open stage")])
    if kinds.count("won") > 1 or kinds.count("lost") > 1 or kinds.count("invalid") > 1:
        raise ValidationFailed(
            errors=[field_error("stages", "one won, lost and invalid stage each")]
        )
    stages = list(data.stages)
    for name, probability, kind in END_STAGES:
        if kind not in kinds:
            stages.append(StageIn(name=name, probability=probability, kind=kind))
    pipeline = Pipeline(name=data.name, is_default=False)
    session.add(pipeline)
    await session.flush()
    no_default = (
        await session.scalar(select(Pipeline.id).where(Pipeline.is_default.is_(True))) is None
    )
    if data.is_default or no_default:
        await _set_default(session, pipeline)
    session.add_all(_stage(pipeline.id, i, s) for i, s in enumerate(stages))
    await session.flush()
    return await get_pipeline(session, pipeline.id)


async def update_pipeline(
    session: AsyncSession, pipeline_id: int, version: int, data: PipelineUpdate
) -> tuple[Pipeline, list[PipelineStage]]:
    pipeline, _ = await get_pipeline(session, pipeline_id)
    check_version(pipeline, version)
    if data.name is not None and data.name != pipeline.name:
        if await session.scalar(select(Pipeline.id).where(Pipeline.name == data.name)):
            raise Conflict(f"pipeline {data.name!r} exists", errors=[field_error("name", "taken")])
        pipeline.name = data.name
    if data.is_default:
        await _set_default(session, pipeline)
    pipeline.updated_at = utcnow()
    await flush_versioned(session)
    return await get_pipeline(session, pipeline.id)


async def add_stage(session: AsyncSession, pipeline_id: int, data: StageIn) -> PipelineStage:
    _, stages = await get_pipeline(session, pipeline_id)
    if data.kind != "open":
        raise ValidationFailed(errors=[field_error("kind", "only open stages can be added")])
    if any(s.name == data.name for s in stages):
        raise Conflict(f"stage {data.name!r} exists", errors=[field_error("name", "taken")])
    # New open stages go after the last open one, before the end stages.
    position = max((s.position for s in stages if s.kind == "open"), default=-1) + 1
    for s in stages:
        if s.position >= position:
            s.position += 1
    stage = _stage(pipeline_id, position, data)
    session.add(stage)
    await session.flush()
    return stage


async def _get_stage(session: AsyncSession, stage_id: int) -> PipelineStage:
    stage = await session.get(PipelineStage, stage_id)
    if stage is None:
        raise NotFound(f"stage {stage_id} not found")
    return stage


async def update_stage(session: AsyncSession, stage_id: int, data: StageUpdate) -> PipelineStage:
    stage = await _get_stage(session, stage_id)
    changes = data.model_dump(exclude_unset=True)
    for key in ("name", "probability", "forecast_category", "position"):
        if key in changes and changes[key] is None:
            raise ValidationFailed(errors=[field_error(key, "cannot be null")])
    for key, value in changes.items():
        setattr(stage, key, value)
    await session.flush()
    return stage


async def delete_stage(session: AsyncSession, stage_id: int) -> None:
    stage = await _get_stage(session, stage_id)
    if stage.kind != "open":
        raise Conflict("the won, lost and invalid stages belong to every pipeline")
    held = await session.scalar(
        select(func.count())
        .select_from(Opportunity)
        .where(Opportunity.stage_id == stage_id, Opportunity.deleted_at.is_(None))
    )
    if held:
        raise Conflict(f"the stage holds {held} opportunities; move them first", opportunities=held)
    others = await session.scalar(
        select(func.count())
        .select_from(PipelineStage)
        .where(
            PipelineStage.pipeline_id == stage.pipeline_id,
            PipelineStage.kind == "open",
            PipelineStage.id != stage_id,
        )
    )
    if not others:
        raise Conflict("a pipeline needs at least one open stage")
    # History rows keep pointing at the stage id; keep the row, only past snapshots use it.
    if await session.scalar(
        select(OpportunityHistory.id).where(OpportunityHistory.stage_id == stage_id).limit(1)
    ):
        raise Conflict("the stage appears in opportunity history; rename it instead")
    await session.delete(stage)
    await session.flush()


# --- opportunities -----------------------------------------------------------------------------


async def _pipeline_for(session: AsyncSession, pipeline_id: int | None) -> Pipeline:
    if pipeline_id is None:
        pipeline = await session.scalar(select(Pipeline).where(Pipeline.is_default.is_(True)))
        if pipeline is None:
            raise ValidationFailed(
                errors=[field_error("pipeline_id", "no default pipeline; give one")]
            )
        return pipeline
    found = await session.get(Pipeline, pipeline_id)
    if found is None:
        raise ValidationFailed(errors=[field_error("pipeline_id", "no such pipeline")])
    return found


async def resolve_lines(
    session: AsyncSession, lines: Sequence[LineIn]
) -> list[tuple[int, int, int, int]]:
    """(product id, quantity, unit price, unit cost) in cents for each line; the price defaults
    to the product's. Shared by opportunities and contracts."""
    ids = {line.product_id for line in lines}
    products = {
        p.id: p for p in (await session.scalars(select(Product).where(Product.id.in_(ids)))).all()
    }
    missing = sorted(ids - set(products))
    if missing:
        raise ValidationFailed(errors=[field_error("lines", f"no such products: {missing}")])
    return [
        (
            line.product_id,
            line.quantity,
            to_cents(line.unit_price)
            if line.unit_price is not None
            else products[line.product_id].unit_price_cents,
            products[line.product_id].unit_cost_cents,
        )
        for line in lines
    ]


def _snapshot(opp: Opportunity) -> dict[str, Any]:
    return {
        "stage_id": opp.stage_id,
        "status": opp.status,
        "amount": str(from_cents(opp.amount_cents)),
        "expected_close_date": audit.jsonable(opp.expected_close_date),
        "owner_id": opp.owner_id,
    }


async def _record_history(session: AsyncSession, opp: Opportunity, now: dt.datetime) -> None:
    """Close the current history interval and open one with the opportunity as it is now."""
    await session.execute(
        update(OpportunityHistory)
        .where(OpportunityHistory.opportunity_id == opp.id, OpportunityHistory.valid_to.is_(None))
        .values(valid_to=now)
    )
    session.add(
        OpportunityHistory(
            opportunity_id=opp.id,
            pipeline_id=opp.pipeline_id,
            stage_id=opp.stage_id,
            status=opp.status,
            owner_id=opp.owner_id,
            amount_cents=opp.amount_cents,
            expected_close_date=opp.expected_close_date,
            valid_from=now,
        )
    )


def _log(
    session: AsyncSession,
    principal: Principal,
    opp: Opportunity,
    action: str,
    changes: dict[str, Any],
) -> None:
    audit.customer_event(
        session,
        principal.user_id,
        opp.customer_id,
        action,
        changes,
        entity="opportunity",
        entity_id=opp.id,
    )


async def create_opportunity(
    session: AsyncSession, principal: Principal, data: OpportunityCreate
) -> Opportunity:
    now = utcnow()
    try:
        customer = await access.get_writable(session, principal, Customer, data.customer_id)
    except NotFound:
        raise ValidationFailed(
            errors=[field_error("customer_id", "no such customer in your data scope")]
        ) from None
    pipeline = await _pipeline_for(session, data.pipeline_id)
    stages = (await stages_of(session, [pipeline.id]))[pipeline.id]
    open_stages = [s for s in stages if s.kind == "open"]
    if data.stage_id is None:
        stage = open_stages[0]
    else:
        chosen = [s for s in open_stages if s.id == data.stage_id]
        if not chosen:
            raise ValidationFailed(
                errors=[field_error("stage_id", "not an open stage of this pipeline")]
            )
        stage = chosen[0]
    lines = await resolve_lines(session, data.lines)
    amount = (
        to_cents(data.amount) if data.amount is not None else sum(q * p for _, q, p, _c in lines)
    )
    opp = Opportunity(
        customer_id=customer.id,
        pipeline_id=pipeline.id,
        stage_id=stage.id,
        owner_id=principal.user_id,
        title=data.title,
        amount_cents=amount,
        expected_close_date=data.expected_close_date,
        status="open",
        stage_entered_at=now,
    )
    session.add(opp)
    await session.flush()
    session.add_all(
        OpportunityLine(opportunity_id=opp.id, product_id=pid, quantity=q, unit_price_cents=p)
        for pid, q, p, _c in lines
    )
    await _record_history(session, opp, now)
    _log(
        session,
        principal,
        opp,
        "opportunity_created",
        audit.diff({}, {"title": opp.title, **_snapshot(opp)}),
    )
    await session.flush()
    return opp


async def get_opportunity(
    session: AsyncSession, principal: Principal, opportunity_id: int
) -> Opportunity:
    return await access.get_readable(session, principal, Opportunity, opportunity_id)


async def list_opportunities(
    session: AsyncSession,
    principal: Principal,
    *,
    pipeline_id: int | None,
    stage_id: int | None,
    status: str | None,
    owner_id: int | None,
    customer_id: int | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Opportunity], str | None]:
    conditions: list[ColumnElement[bool]] = [
        Opportunity.deleted_at.is_(None),
        access.readable(principal, Opportunity),
    ]
    for column, value in (
        (Opportunity.pipeline_id, pipeline_id),
        (Opportunity.stage_id, stage_id),
        (Opportunity.status, status),
        (Opportunity.owner_id, owner_id),
        (Opportunity.customer_id, customer_id),
    ):
        if value is not None:
            conditions.append(column == value)
    return await fetch_page(
        session,
        Opportunity,
        conditions,
        Opportunity.updated_at,
        descending=True,
        cursor=cursor,
        limit=limit,
    )


async def update_opportunity(
    session: AsyncSession,
    principal: Principal,
    opportunity_id: int,
    version: int,
    data: OpportunityUpdate,
) -> Opportunity:
    now = utcnow()
    opp = await access.get_writable(session, principal, Opportunity, opportunity_id)
    check_version(opp, version)
    before = _snapshot(opp)
    changes = data.model_dump(exclude_unset=True)
    if "lines" in changes:
        lines = await resolve_lines(session, data.lines or [])
        await session.execute(
            delete(OpportunityLine).where(OpportunityLine.opportunity_id == opp.id)
        )
        session.add_all(
            OpportunityLine(opportunity_id=opp.id, product_id=pid, quantity=q, unit_price_cents=p)
            for pid, q, p, _c in lines
        )
        if "amount" not in changes:
            opp.amount_cents = sum(q * p for _, q, p, _c in lines)
    if "amount" in changes:
        opp.amount_cents = to_cents(changes["amount"])
    if "title" in changes:
        opp.title = changes["title"]
    if "expected_close_date" in changes:
        opp.expected_close_date = changes["expected_close_date"]
    if "forecast_category" in changes:
        opp.forecast_category = changes["forecast_category"]
    opp.updated_at = now
    after = _snapshot(opp)
    if after != before:
        await _record_history(session, opp, now)
    diff = audit.diff(before, after)
    if diff or "title" in changes or "forecast_category" in changes:
        _log(session, principal, opp, "opportunity_updated", diff)
    await flush_versioned(session)
    return opp


async def _move(
    session: AsyncSession,
    principal: Principal,
    opp: Opportunity,
    stage: PipelineStage,
    now: dt.datetime,
    action: str,
    **extra: Any,
) -> Opportunity:
    before = _snapshot(opp)
    opp.stage_id = stage.id
    opp.status = stage.kind
    opp.stage_entered_at = now
    opp.closed_at = now if stage.kind != "open" else None
    if stage.kind != "lost":
        opp.lost_reason_id = None
    for key, value in extra.items():
        setattr(opp, key, value)
    opp.updated_at = now
    await _record_history(session, opp, now)
    _log(session, principal, opp, action, audit.diff(before, _snapshot(opp)))
    await flush_versioned(session)
    return opp


async def _stage_in(
    session: AsyncSession, opp: Opportunity, **criteria: Any
) -> PipelineStage | None:
    stmt = select(PipelineStage).where(PipelineStage.pipeline_id == opp.pipeline_id)
    for key, value in criteria.items():
        stmt = stmt.where(getattr(PipelineStage, key) == value)
    return await session.scalar(stmt.order_by(PipelineStage.position))


async def move_stage(
    session: AsyncSession, principal: Principal, opportunity_id: int, version: int, data: StageMove
) -> Opportunity:
    opp = await access.get_writable(session, principal, Opportunity, opportunity_id)
    check_version(opp, version)
    stage = await _stage_in(session, opp, id=data.stage_id)
    if stage is None:
        raise ValidationFailed(errors=[field_error("stage_id", "not a stage of this pipeline")])
    if stage.kind in ("won", "lost"):
        raise Conflict(f"use /{'win' if stage.kind == 'won' else 'lose'} to close an opportunity")
    if stage.id == opp.stage_id:
        raise Conflict("the opportunity is already in this stage")
    return await _move(
        session, principal, opp, stage, utcnow(), "opportunity_stage_changed", close_note=data.note
    )


async def win(
    session: AsyncSession, principal: Principal, opportunity_id: int, version: int, data: WinIn
) -> Opportunity:
    opp = await access.get_writable(session, principal, Opportunity, opportunity_id)
    check_version(opp, version)
    if opp.status != "open":
        raise Conflict(f"the opportunity is {opp.status}; only open opportunities are won")
    stage = await _stage_in(session, opp, kind="won")
    assert stage is not None
    extra: dict[str, Any] = {"close_note": data.note}
    if data.amount is not None:
        extra["amount_cents"] = to_cents(data.amount)
    return await _move(session, principal, opp, stage, utcnow(), "opportunity_won", **extra)


async def mark_won(
    session: AsyncSession, principal: Principal, opp: Opportunity, now: dt.datetime, *, note: str
) -> None:
    """Close an open opportunity as won on behalf of another record (a signed contract)."""
    stage = await _stage_in(session, opp, kind="won")
    assert stage is not None
    await _move(session, principal, opp, stage, now, "opportunity_won", close_note=note)


async def lose(
    session: AsyncSession, principal: Principal, opportunity_id: int, version: int, data: LoseIn
) -> Opportunity:
    opp = await access.get_writable(session, principal, Opportunity, opportunity_id)
    check_version(opp, version)
    if opp.status != "open":
        raise Conflict(f"the opportunity is {opp.status}; only open opportunities are lost")
    reason = await session.get(LostReason, data.lost_reason_id)
    if reason is None or not reason.active:
        raise ValidationFailed(
            errors=[field_error("lost_reason_id", "pick one of the active lost reasons")]
        )
    stage = await _stage_in(session, opp, kind="lost")
    assert stage is not None
    return await _move(
        session,
        principal,
        opp,
        stage,
        utcnow(),
        "opportunity_lost",
        lost_reason_id=reason.id,
        close_note=data.note,
    )


async def delete_opportunity(
    session: AsyncSession, principal: Principal, opportunity_id: int, version: int
) -> None:
    opp = await access.get_writable(session, principal, Opportunity, opportunity_id)
    check_version(opp, version)
    now = utcnow()
    opp.deleted_at = now
    await session.execute(
        update(OpportunityHistory)
        .where(OpportunityHistory.opportunity_id == opp.id, OpportunityHistory.valid_to.is_(None))
        .values(valid_to=now)
    )
    _log(
        session,
        principal,
        opp,
        "opportunity_deleted",
        {"title": {"before": opp.title, "after": None}},
    )
    await flush_versioned(session)


async def opportunity_views(
    session: AsyncSession, opps: Sequence[Opportunity]
) -> list[dict[str, Any]]:
    if not opps:
        return []
    stage_ids = {o.stage_id for o in opps}
    stages = {
        s.id: s
        for s in (
            await session.scalars(select(PipelineStage).where(PipelineStage.id.in_(stage_ids)))
        ).all()
    }
    customers = dict(
        (
            await session.execute(
                select(Customer.id, Customer.name).where(
                    Customer.id.in_({o.customer_id for o in opps})
                )
            )
        ).all()
    )
    owners = dict(
        (
            await session.execute(
                select(User.id, User.display_name).where(User.id.in_({o.owner_id for o in opps}))
            )
        ).all()
    )
    reason_ids = {o.lost_reason_id for o in opps if o.lost_reason_id}
    reasons = (
        {
            r.id: r
            for r in (
                await session.scalars(select(LostReason).where(LostReason.id.in_(reason_ids)))
            ).all()
        }
        if reason_ids
        else {}
    )
    lines: dict[int, list[dict[str, Any]]] = {o.id: [] for o in opps}
    for line, product_name in (
        await session.execute(
            select(OpportunityLine, Product.name)
            .join(Product, Product.id == OpportunityLine.product_id)
            .where(OpportunityLine.opportunity_id.in_(lines))
            .order_by(OpportunityLine.id)
        )
    ).all():
        lines[line.opportunity_id].append(
            {
                "id": line.id,
                "product_id": line.product_id,
                "product_name": product_name,
                "quantity": line.quantity,
                "unit_price": from_cents(line.unit_price_cents),
                "total": from_cents(line.unit_price_cents * line.quantity),
            }
        )
    out = []
    for o in opps:
        stage = stages[o.stage_id]
        reason = reasons.get(o.lost_reason_id) if o.lost_reason_id else None
        out.append(
            {
                "id": o.id,
                "customer_id": o.customer_id,
                "customer_name": customers.get(o.customer_id, ""),
                "title": o.title,
                "pipeline_id": o.pipeline_id,
                "stage": stage,
                "status": o.status,
                "amount": from_cents(o.amount_cents),
                "weighted_amount": from_cents(weighted_cents(o.amount_cents, stage.probability)),
                "expected_close_date": o.expected_close_date,
                "owner": {"id": o.owner_id, "display_name": owners.get(o.owner_id, "")},
                "forecast_category": o.forecast_category or stage.forecast_category,
                "forecast_category_overridden": o.forecast_category is not None,
                "lost_reason": reason,
                "close_note": o.close_note,
                "closed_at": o.closed_at,
                "stage_entered_at": o.stage_entered_at,
                "lines": lines[o.id],
                "version": o.version,
                "created_at": o.created_at,
                "updated_at": o.updated_at,
            }
        )
    return out


async def history(
    session: AsyncSession, principal: Principal, opportunity_id: int
) -> list[dict[str, Any]]:
    await access.get_readable(session, principal, Opportunity, opportunity_id)
    rows = await session.execute(
        select(OpportunityHistory, PipelineStage.name)
        .join(PipelineStage, PipelineStage.id == OpportunityHistory.stage_id)
        .where(OpportunityHistory.opportunity_id == opportunity_id)
        .order_by(OpportunityHistory.valid_from, OpportunityHistory.id)
    )
    return [
        {
            "stage_id": h.stage_id,
            "stage_name": name,
            "status": h.status,
            "amount": from_cents(h.amount_cents),
            "expected_close_date": h.expected_close_date,
            "owner_id": h.owner_id,
            "entered_at": h.valid_from,
            "left_at": h.valid_to,
        }
        for h, name in rows.all()
    ]
