"""The rep's day (SPEC D5)."""

from __future__ import annotations

from app.deps import CurrentPrincipal, SessionDep
from app.routers.common import ApiRouter, problems
from app.schemas.activity import TodayOut
from app.services import today as service

router = ApiRouter(tags=["today"])


@router.get("/today", response_model=TodayOut, responses=problems())
async def get_today(principal: CurrentPrincipal, session: SessionDep) -> TodayOut:
    """Your day: visits, follow-ups due and overdue, birthdays and anniversaries ahead."""
    return TodayOut.model_validate(await service.today(session, principal))
