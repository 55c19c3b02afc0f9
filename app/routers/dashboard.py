"""The dashboard brief (SPEC G1)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from fastapi import APIRouter

from app.deps import CurrentPrincipal, SessionDep
from app.routers.common import problems
from app.schemas.activity import BriefOut
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
