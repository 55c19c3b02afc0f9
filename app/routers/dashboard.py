"""The dashboard: brief, trends and rankings (SPEC G1, G2)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Query, Response

from app.access import Principal
from app.deps import CurrentPrincipal, SessionDep, require
from app.routers.common import ApiRouter, QueryDate, problems
from app.schemas.activity import BriefOut, RankingOut, TargetIn, TargetOut, TrendOut
from app.services import dashboard as service

router = ApiRouter(tags=["dashboard"])
Manager = Annotated[Principal, Depends(require("target.manage"))]


@router.get(
    "/dashboard/brief",
    response_model=BriefOut,
    responses=problems(),
    description="Figures for the period containing `date` (default today) against the period "
    "before it, within your data scope (a rep's own, a manager's department and children).\n\n"
    + service.metric_docs(),
)
async def get_brief(
    principal: CurrentPrincipal,
    session: SessionDep,
    period: Literal["day", "week", "month", "quarter"] = "month",
    date: QueryDate | None = None,
) -> BriefOut:
    """Period summary against the previous period."""
    return BriefOut.model_validate(await service.brief(session, principal, period=period, day=date))


@router.get(
    "/dashboard/trend",
    response_model=TrendOut,
    responses=problems(),
    description=(service.trend.__doc__ or "") + "\n\nMetrics:\n" + service.metric_docs(),
)
async def get_trend(
    principal: CurrentPrincipal,
    session: SessionDep,
    metric: str,
    first: Annotated[QueryDate, Query(alias="from")],
    last: Annotated[QueryDate, Query(alias="to")],
    granularity: Literal["day", "week", "month"] = "month",
) -> TrendOut:
    """A metric over time."""
    return TrendOut.model_validate(
        await service.trend(
            session, principal, metric=metric, granularity=granularity, first=first, last=last
        )
    )


@router.get(
    "/dashboard/ranking",
    response_model=RankingOut,
    responses=problems(),
    description=(service.ranking.__doc__ or "") + "\n\nMetrics:\n" + service.metric_docs(),
)
async def get_ranking(
    principal: CurrentPrincipal,
    session: SessionDep,
    metric: str,
    period: Literal["day", "week", "month", "quarter"] = "month",
    date: QueryDate | None = None,
) -> RankingOut:
    """Users in your scope ranked by a metric."""
    return RankingOut.model_validate(
        await service.ranking(session, principal, metric=metric, period=period, day=date)
    )


@router.get("/targets", response_model=list[TargetOut], responses=problems())
async def list_targets(
    principal: CurrentPrincipal,
    session: SessionDep,
    month: Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")] = None,
) -> list[TargetOut]:
    """Monthly targets in your scope with the actual figure and completion."""
    return [
        TargetOut.model_validate(t)
        for t in await service.list_targets(session, principal, month=month)
    ]


@router.put("/targets", response_model=TargetOut, responses=problems(403))
async def set_target(body: TargetIn, principal: Manager, session: SessionDep) -> TargetOut:
    """Set (create or replace) a user's or a department's target for a month and metric."""
    target = await service.set_target(session, principal, body)
    [view] = await service.target_views(session, [target])
    return TargetOut.model_validate(view)


@router.delete("/targets/{target_id}", status_code=204, responses=problems(403, 404))
async def delete_target(target_id: int, principal: Manager, session: SessionDep) -> Response:
    """Remove a target."""
    await service.delete_target(session, principal, target_id)
    return Response(status_code=204)
