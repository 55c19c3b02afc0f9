"""Products, pipelines, lost reasons and opportunities (SPEC E1, E2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, Query, Response, status

from app.access import Principal
from app.deps import CurrentPrincipal, IfMatch, SessionDep, require
from app.models import Opportunity, Pipeline, PipelineStage, Product
from app.routers.common import ETAG_HEADER, WITH_ETAG, ApiRouter, problems, set_etag
from app.schemas.common import Page
from app.schemas.opportunity import (
    HistoryOut,
    LoseIn,
    LostReasonIn,
    LostReasonOut,
    OpportunityCreate,
    OpportunityOut,
    OpportunityStatus,
    OpportunityUpdate,
    PipelineCreate,
    PipelineOut,
    PipelineUpdate,
    ProductCreate,
    ProductOut,
    ProductUpdate,
    StageIn,
    StageMove,
    StageOut,
    StageUpdate,
    WinIn,
)
from app.services import opportunities as service

router = ApiRouter(tags=["opportunities"])
Admin = Annotated[Principal, Depends(require("config.manage"))]
NO_CONTENT = status.HTTP_204_NO_CONTENT


# --- products ----------------------------------------------------------------------------------


@router.get("/products", response_model=list[ProductOut], responses=problems())
async def list_products(
    _: CurrentPrincipal, session: SessionDep, active: bool | None = None
) -> list[ProductOut]:
    """Products, by name."""
    rows = await service.list_products(session, active=active)
    return [ProductOut.model_validate(service.product_view(p)) for p in rows]


@router.post("/products", response_model=ProductOut, status_code=201, responses=problems(403, 409))
async def create_product(body: ProductCreate, _: Admin, session: SessionDep) -> ProductOut:
    """Add a product."""
    return ProductOut.model_validate(
        service.product_view(await service.create_product(session, body))
    )


@router.get(
    "/products/{product_id}", response_model=ProductOut, responses={**problems(404), **WITH_ETAG}
)
async def get_product(
    product_id: int, _: CurrentPrincipal, session: SessionDep, response: Response
) -> ProductOut:
    """Read one product."""
    product = await service.get_product(session, product_id)
    set_etag(response, product.version)
    return ProductOut.model_validate(service.product_view(product))


@router.patch(
    "/products/{product_id}", response_model=ProductOut, responses=problems(403, 404, 409, 412, 428)
)
async def update_product(
    product_id: int,
    body: ProductUpdate,
    version: IfMatch,
    _: Admin,
    session: SessionDep,
    response: Response,
) -> ProductOut:
    """Change a product (send If-Match)."""
    product: Product = await service.update_product(session, product_id, version, body)
    set_etag(response, product.version)
    return ProductOut.model_validate(service.product_view(product))


# --- lost reasons ------------------------------------------------------------------------------


@router.get("/lost-reasons", response_model=list[LostReasonOut], responses=problems())
async def list_lost_reasons(_: CurrentPrincipal, session: SessionDep) -> list[LostReasonOut]:
    """The reasons a lost opportunity picks from."""
    return [LostReasonOut.model_validate(r) for r in await service.list_lost_reasons(session)]


@router.post(
    "/lost-reasons", response_model=LostReasonOut, status_code=201, responses=problems(403, 409)
)
async def create_lost_reason(body: LostReasonIn, _: Admin, session: SessionDep) -> LostReasonOut:
    """Add a lost reason."""
    return LostReasonOut.model_validate(await service.create_lost_reason(session, body))


# --- pipelines ---------------------------------------------------------------------------------


def _pipeline_out(pipeline: Pipeline, stages: Sequence[PipelineStage]) -> PipelineOut:
    return PipelineOut(
        id=pipeline.id,
        name=pipeline.name,
        is_default=pipeline.is_default,
        version=pipeline.version,
        stages=[StageOut.model_validate(s) for s in stages],
    )


@router.get("/pipelines", response_model=list[PipelineOut], responses=problems())
async def list_pipelines(_: CurrentPrincipal, session: SessionDep) -> list[PipelineOut]:
    """Pipelines with their ordered stages."""
    return [_pipeline_out(p, stages) for p, stages in await service.list_pipelines(session)]


@router.post(
    "/pipelines", response_model=PipelineOut, status_code=201, responses=problems(403, 409)
)
async def create_pipeline(body: PipelineCreate, _: Admin, session: SessionDep) -> PipelineOut:
    """Create a pipeline; won, lost and invalid end stages are added when not given."""
    return _pipeline_out(*await service.create_pipeline(session, body))


@router.get(
    "/pipelines/{pipeline_id}", response_model=PipelineOut, responses={**problems(404), **WITH_ETAG}
)
async def get_pipeline(
    pipeline_id: int, _: CurrentPrincipal, session: SessionDep, response: Response
) -> PipelineOut:
    """Read one pipeline."""
    pipeline, stages = await service.get_pipeline(session, pipeline_id)
    set_etag(response, pipeline.version)
    return _pipeline_out(pipeline, stages)


@router.patch(
    "/pipelines/{pipeline_id}",
    response_model=PipelineOut,
    responses=problems(403, 404, 409, 412, 428),
)
async def update_pipeline(
    pipeline_id: int,
    body: PipelineUpdate,
    version: IfMatch,
    _: Admin,
    session: SessionDep,
    response: Response,
) -> PipelineOut:
    """Rename a pipeline or make it the default."""
    pipeline, stages = await service.update_pipeline(session, pipeline_id, version, body)
    set_etag(response, pipeline.version)
    return _pipeline_out(pipeline, stages)


@router.post(
    "/pipelines/{pipeline_id}/stages",
    response_model=StageOut,
    status_code=201,
    responses=problems(403, 404, 409),
)
async def add_pipeline_stage(
    pipeline_id: int, body: StageIn, _: Admin, session: SessionDep
) -> StageOut:
    """Add an open stage (after the other open stages)."""
    return StageOut.model_validate(await service.add_stage(session, pipeline_id, body))


@router.patch("/pipeline-stages/{stage_id}", response_model=StageOut, responses=problems(403, 404))
async def update_pipeline_stage(
    stage_id: int, body: StageUpdate, _: Admin, session: SessionDep
) -> StageOut:
    """Rename a stage or change its probability, stale threshold, category or position."""
    return StageOut.model_validate(await service.update_stage(session, stage_id, body))


@router.delete(
    "/pipeline-stages/{stage_id}", status_code=NO_CONTENT, responses=problems(403, 404, 409)
)
async def delete_pipeline_stage(stage_id: int, _: Admin, session: SessionDep) -> Response:
    """Delete an open stage that holds no opportunities (409 otherwise)."""
    await service.delete_stage(session, stage_id)
    return Response(status_code=NO_CONTENT)


# --- opportunities -----------------------------------------------------------------------------


async def _out(
    session: SessionDep, opp: Opportunity, response: Response | None = None
) -> OpportunityOut:
    [view] = await service.opportunity_views(session, [opp])
    if response is not None:
        set_etag(response, opp.version)
    return OpportunityOut.model_validate(view)


@router.post(
    "/opportunities",
    response_model=OpportunityOut,
    status_code=201,
    responses={**problems(403), 201: {"headers": ETAG_HEADER}},
)
async def create_opportunity(
    body: OpportunityCreate, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> OpportunityOut:
    """Open an opportunity on a customer."""
    return await _out(session, await service.create_opportunity(session, principal, body), response)


@router.get("/opportunities", response_model=Page[OpportunityOut], responses=problems())
async def list_opportunities(
    principal: CurrentPrincipal,
    session: SessionDep,
    pipeline_id: int | None = None,
    stage_id: int | None = None,
    status: OpportunityStatus | None = None,
    owner_id: int | None = None,
    customer_id: int | None = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[OpportunityOut]:
    """Opportunities in your scope, most recently changed first."""
    rows, next_cursor = await service.list_opportunities(
        session,
        principal,
        pipeline_id=pipeline_id,
        stage_id=stage_id,
        status=status,
        owner_id=owner_id,
        customer_id=customer_id,
        cursor=cursor,
        limit=limit,
    )
    views = await service.opportunity_views(session, rows)
    return Page[OpportunityOut](
        items=[OpportunityOut.model_validate(v) for v in views], next_cursor=next_cursor
    )


@router.get(
    "/opportunities/{opportunity_id}",
    response_model=OpportunityOut,
    responses={**problems(404), **WITH_ETAG},
)
async def get_opportunity(
    opportunity_id: int, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> OpportunityOut:
    """Read one opportunity."""
    return await _out(
        session, await service.get_opportunity(session, principal, opportunity_id), response
    )


@router.get(
    "/opportunities/{opportunity_id}/history",
    response_model=list[HistoryOut],
    responses=problems(404),
)
async def opportunity_history(
    opportunity_id: int, principal: CurrentPrincipal, session: SessionDep
) -> list[HistoryOut]:
    """Every state the opportunity has been in: stage, amount, close date, entered and left."""
    return [
        HistoryOut.model_validate(h)
        for h in await service.history(session, principal, opportunity_id)
    ]


@router.patch(
    "/opportunities/{opportunity_id}",
    response_model=OpportunityOut,
    responses=problems(403, 404, 412, 428),
)
async def update_opportunity(
    opportunity_id: int,
    body: OpportunityUpdate,
    version: IfMatch,
    principal: CurrentPrincipal,
    session: SessionDep,
    response: Response,
) -> OpportunityOut:
    """Change title, amount, close date, lines or the forecast category (send If-Match)."""
    opp = await service.update_opportunity(session, principal, opportunity_id, version, body)
    return await _out(session, opp, response)


@router.delete(
    "/opportunities/{opportunity_id}",
    status_code=NO_CONTENT,
    responses=problems(403, 404, 412, 428),
)
async def delete_opportunity(
    opportunity_id: int, version: IfMatch, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    """Delete an opportunity (soft)."""
    await service.delete_opportunity(session, principal, opportunity_id, version)
    return Response(status_code=NO_CONTENT)


@router.post(
    "/opportunities/{opportunity_id}/stage",
    response_model=OpportunityOut,
    responses=problems(403, 404, 409, 412, 428),
)
async def move_opportunity_stage(
    opportunity_id: int,
    body: StageMove,
    version: IfMatch,
    principal: CurrentPrincipal,
    session: SessionDep,
    response: Response,
) -> OpportunityOut:
    """Move an opportunity to another open (or the invalid) stage."""
    opp = await service.move_stage(session, principal, opportunity_id, version, body)
    return await _out(session, opp, response)


@router.post(
    "/opportunities/{opportunity_id}/win",
    response_model=OpportunityOut,
    responses=problems(403, 404, 409, 412, 428),
)
async def win_opportunity(
    opportunity_id: int,
    body: WinIn,
    version: IfMatch,
    principal: CurrentPrincipal,
    session: SessionDep,
    response: Response,
) -> OpportunityOut:
    """Close an opportunity as won."""
    return await _out(
        session, await service.win(session, principal, opportunity_id, version, body), response
    )


@router.post(
    "/opportunities/{opportunity_id}/lose",
    response_model=OpportunityOut,
    responses=problems(403, 404, 409, 412, 428),
)
async def lose_opportunity(
    opportunity_id: int,
    body: LoseIn,
    version: IfMatch,
    principal: CurrentPrincipal,
    session: SessionDep,
    response: Response,
) -> OpportunityOut:
    """Close an opportunity as lost, with a reason from the list."""
    return await _out(
        session, await service.lose(session, principal, opportunity_id, version, body), response
    )
