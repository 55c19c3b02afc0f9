"""Funnel snapshots (SPEC E3)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from app.deps import CurrentPrincipal, SessionDep
from app.routers.common import ApiRouter, QueryDate, problems
from app.schemas.opportunity import ForecastOut, FunnelOut, MovementOut
from app.services import funnel as service

router = ApiRouter(tags=["funnel"])


@router.get(
    "/funnel",
    response_model=FunnelOut,
    responses=problems(),
    description=(service.__doc__ or "").split("Definitions (also in the API description):")[-1],
)
async def get_funnel(
    principal: CurrentPrincipal,
    session: SessionDep,
    pipeline_id: int | None = None,
    as_of: QueryDate | None = None,
    owner_id: int | None = None,
    department_id: int | None = None,
) -> FunnelOut:
    """The funnel of a pipeline in your scope, now or at the end of a past day."""
    return FunnelOut.model_validate(
        await service.funnel(
            session,
            principal,
            pipeline_id=pipeline_id,
            as_of=as_of,
            owner_id=owner_id,
            department_id=department_id,
        )
    )


@router.get(
    "/funnel/movement",
    response_model=MovementOut,
    response_model_by_alias=True,
    responses=problems(),
    description=service.movement.__doc__,
)
async def get_funnel_movement(
    principal: CurrentPrincipal,
    session: SessionDep,
    from_day: Annotated[QueryDate, Query(alias="from")],
    to_day: Annotated[QueryDate, Query(alias="to")],
    pipeline_id: int | None = None,
) -> MovementOut:
    """Opportunities new, advanced, slipped back, won and lost between two days."""
    return MovementOut.model_validate(
        await service.movement(
            session, principal, from_day=from_day, to_day=to_day, pipeline_id=pipeline_id
        )
    )


@router.get(
    "/forecast",
    response_model=ForecastOut,
    responses=problems(),
    description=service.forecast.__doc__,
)
async def get_forecast(
    principal: CurrentPrincipal,
    session: SessionDep,
    first_month: Annotated[str, Query(alias="from", pattern=r"^\d{4}-\d{2}$")],
    last_month: Annotated[str, Query(alias="to", pattern=r"^\d{4}-\d{2}$")],
    pipeline_id: int | None = None,
) -> ForecastOut:
    """Forecast by expected close month, per category, against the amount actually won."""
    return ForecastOut.model_validate(
        await service.forecast(
            session,
            principal,
            first_month=first_month,
            last_month=last_month,
            pipeline_id=pipeline_id,
        )
    )
