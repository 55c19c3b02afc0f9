"""Follow-ups and visit plans (SPEC D1, D2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import Query, Response, status

from app.deps import CurrentPrincipal, IfMatch, SessionDep
from app.models import FollowUp, Visit
from app.routers.common import ETAG_HEADER, WITH_ETAG, ApiRouter, QueryDateTime, problems, set_etag
from app.schemas.activity import (
    FollowUpCreate,
    FollowUpOut,
    FollowUpType,
    VisitCancel,
    VisitComplete,
    VisitCreate,
    VisitOut,
    VisitReschedule,
    VisitStatus,
)
from app.schemas.common import Page
from app.services import activities as service

router = ApiRouter(tags=["activities"])
Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(max_length=500)]


async def _follow_up_out(session: SessionDep, follow_ups: Sequence[FollowUp]) -> list[FollowUpOut]:
    return [
        FollowUpOut.model_validate(v) for v in await service.follow_up_views(session, follow_ups)
    ]


@router.post(
    "/follow-ups",
    response_model=FollowUpOut,
    status_code=status.HTTP_201_CREATED,
    responses=problems(403),
)
async def log_follow_up(
    body: FollowUpCreate, principal: CurrentPrincipal, session: SessionDep
) -> FollowUpOut:
    """Log a follow-up (call, visit with check-in, return visit ...) on a customer."""
    follow_up = await service.log_follow_up(session, principal, body)
    return (await _follow_up_out(session, [follow_up]))[0]


@router.get("/follow-ups", response_model=Page[FollowUpOut], responses=problems(404))
async def list_follow_ups(
    principal: CurrentPrincipal,
    session: SessionDep,
    customer_id: int | None = None,
    author_id: int | None = None,
    type: FollowUpType | None = None,
    occurred_from: Annotated[QueryDateTime | None, Query(alias="from")] = None,
    occurred_to: Annotated[QueryDateTime | None, Query(alias="to")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[FollowUpOut]:
    """Follow-ups in your data scope, newest first."""
    rows, next_cursor = await service.list_follow_ups(
        session,
        principal,
        customer_id=customer_id,
        author_id=author_id,
        type_=type,
        occurred_from=occurred_from,
        occurred_to=occurred_to,
        cursor=cursor,
        limit=limit,
    )
    return Page[FollowUpOut](items=await _follow_up_out(session, rows), next_cursor=next_cursor)


@router.get(
    "/customers/{customer_id}/follow-ups", response_model=Page[FollowUpOut], responses=problems(404)
)
async def list_customer_follow_ups(
    customer_id: int,
    principal: CurrentPrincipal,
    session: SessionDep,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[FollowUpOut]:
    """A customer's follow-ups, newest first."""
    rows, next_cursor = await service.list_follow_ups(
        session, principal, customer_id=customer_id, cursor=cursor, limit=limit
    )
    return Page[FollowUpOut](items=await _follow_up_out(session, rows), next_cursor=next_cursor)


@router.get("/follow-ups/{follow_up_id}", response_model=FollowUpOut, responses=problems(404))
async def get_follow_up(
    follow_up_id: int, principal: CurrentPrincipal, session: SessionDep
) -> FollowUpOut:
    """Read one follow-up."""
    follow_up = await service.get_follow_up(session, principal, follow_up_id)
    return (await _follow_up_out(session, [follow_up]))[0]


async def _visit_out(
    session: SessionDep, visit: Visit, response: Response | None = None
) -> VisitOut:
    [view] = await service.visit_views(session, [visit])
    if response is not None:
        set_etag(response, view["version"])
    return VisitOut.model_validate(view)


@router.post(
    "/visits",
    response_model=VisitOut,
    status_code=status.HTTP_201_CREATED,
    responses={**problems(403), 201: {"headers": ETAG_HEADER}},
)
async def plan_visit(
    body: VisitCreate, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> VisitOut:
    """Plan a visit with reminders before it starts."""
    visit = await service.plan_visit(session, principal, body)
    return await _visit_out(session, visit, response)


@router.get("/visits", response_model=Page[VisitOut], responses=problems())
async def list_visits(
    principal: CurrentPrincipal,
    session: SessionDep,
    starts_from: Annotated[QueryDateTime | None, Query(alias="from")] = None,
    starts_to: Annotated[QueryDateTime | None, Query(alias="to")] = None,
    status: VisitStatus | None = None,
    owner_id: int | None = None,
    customer_id: int | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[VisitOut]:
    """Visits in your scope (your own, or your team's for managers), soonest first."""
    rows, next_cursor = await service.list_visits(
        session,
        principal,
        starts_from=starts_from,
        starts_to=starts_to,
        status=status,
        owner_id=owner_id,
        customer_id=customer_id,
        cursor=cursor,
        limit=limit,
    )
    views = await service.visit_views(session, rows)
    return Page[VisitOut](
        items=[VisitOut.model_validate(v) for v in views], next_cursor=next_cursor
    )


@router.get("/visits/{visit_id}", response_model=VisitOut, responses={**problems(404), **WITH_ETAG})
async def get_visit(
    visit_id: int, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> VisitOut:
    """Read one visit with its reminders."""
    return await _visit_out(
        session, await service.get_visit(session, principal, visit_id), response
    )


@router.post(
    "/visits/{visit_id}/reschedule",
    response_model=VisitOut,
    responses=problems(403, 404, 409, 412, 428),
)
async def reschedule_visit(
    visit_id: int,
    body: VisitReschedule,
    version: IfMatch,
    principal: CurrentPrincipal,
    session: SessionDep,
    response: Response,
) -> VisitOut:
    """Move a planned visit; its pending reminders move with it."""
    visit = await service.reschedule_visit(session, principal, visit_id, version, body)
    return await _visit_out(session, visit, response)


@router.post(
    "/visits/{visit_id}/complete",
    response_model=VisitOut,
    responses=problems(403, 404, 409, 412, 428),
)
async def complete_visit(
    visit_id: int,
    body: VisitComplete,
    version: IfMatch,
    principal: CurrentPrincipal,
    session: SessionDep,
    response: Response,
) -> VisitOut:
    """Complete a visit: logs a visit follow-up (with optional check-in)."""
    visit = await service.complete_visit(session, principal, visit_id, version, body)
    return await _visit_out(session, visit, response)


@router.post(
    "/visits/{visit_id}/cancel",
    response_model=VisitOut,
    responses=problems(403, 404, 409, 412, 428),
)
async def cancel_visit(
    visit_id: int,
    body: VisitCancel,
    version: IfMatch,
    principal: CurrentPrincipal,
    session: SessionDep,
    response: Response,
) -> VisitOut:
    """Cancel a planned visit and its pending reminders."""
    visit = await service.cancel_visit(session, principal, visit_id, version, body)
    return await _visit_out(session, visit, response)
