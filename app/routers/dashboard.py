"""The dashboard: brief, trends and rankings (SPEC G1, G2)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app.deps import CurrentPrincipal, SessionDep
from app.routers.common import problems
from app.schemas.activity import BriefOut, RankingOut, TrendOut
from app.services import dashboard as service

router = APIRouter(tags=["dashboard"])


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
    date: dt.date | None = None,
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
    first: Annotated[dt.date, Query(alias="from")],
    last: Annotated[dt.date, Query(alias="to")],
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
    date: dt.date | None = None,
) -> RankingOut:
    """Users in your scope ranked by a metric."""
    return RankingOut.model_validate(
        await service.ranking(session, principal, metric=metric, period=period, day=date)
    )
