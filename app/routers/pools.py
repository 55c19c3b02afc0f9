"""Customer pools (公海池, SPEC C1–C6): configure, browse, claim, assign, move, release, stats."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import Depends, Query, Response, status

from app.config import get_settings
from app.deps import CurrentPrincipal, IfMatch, SessionDep
from app.routers.common import ETAG_HEADER, ApiRouter, QueryDate, problems, set_etag
from app.routers.customers import customer_out, customer_query
from app.schemas.common import Page
from app.schemas.customer import CustomerOut
from app.schemas.pool import (
    AssignIn,
    ClaimIn,
    MoveIn,
    PoolActionOut,
    PoolCreate,
    PoolOut,
    PoolStatsOut,
    PoolUpdate,
    ReleaseIn,
)
from app.services import customers as customer_service
from app.services import pools as service
from app.services.customers import CustomerQuery
from app.services.pools import Outcome

router = ApiRouter(tags=["pools"])

ACTION_DOC = (
    " The answer lists per customer what happened and why (`refused` with a reason such as "
    "`already_owned`, `daily_limit`, `cooling_period`, `owned_cap`); when nothing at all "
    "succeeded the answer is a 409 problem carrying the same `results`."
)


async def _one(session: SessionDep, principal: CurrentPrincipal, pool_id: int) -> PoolOut:
    pool = await service.get_pool(session, principal, pool_id)
    day = service.business_day(dt.datetime.now(dt.UTC), get_settings().business_timezone)
    (view,) = await service.pool_views(session, principal, [pool], day=day)
    return PoolOut.model_validate(view)


def _action_out(results: list[Outcome]) -> PoolActionOut:
    ok = sum(1 for r in results if r.outcome != "refused")
    return PoolActionOut.model_validate(
        {"results": [r.__dict__ for r in results], "succeeded": ok, "refused": len(results) - ok}
    )


@router.get("/pools", response_model=list[PoolOut], responses=problems())
async def list_pools(principal: CurrentPrincipal, session: SessionDep) -> list[PoolOut]:
    """Pools you belong to (all pools with pool.manage)."""
    pools = await service.list_pools(session, principal)
    day = service.business_day(dt.datetime.now(dt.UTC), get_settings().business_timezone)
    views = await service.pool_views(session, principal, pools, day=day)
    return [PoolOut.model_validate(v) for v in views]


@router.post(
    "/pools",
    response_model=PoolOut,
    status_code=status.HTTP_201_CREATED,
    responses={**problems(403, 409), 201: {"headers": ETAG_HEADER}},
)
async def create_pool(
    body: PoolCreate, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> PoolOut:
    """Create a pool with its rules and members (pool.manage)."""
    pool = await service.create_pool(session, principal, body)
    set_etag(response, pool.version)
    response.headers["Location"] = f"/api/v1/pools/{pool.id}"
    return await _one(session, principal, pool.id)


@router.get(
    "/pools/{pool_id}",
    response_model=PoolOut,
    responses={**problems(404), 200: {"headers": ETAG_HEADER}},
)
async def get_pool(
    pool_id: int, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> PoolOut:
    """One pool with its rules, members and your claims left today."""
    out = await _one(session, principal, pool_id)
    set_etag(response, out.version)
    return out


@router.patch(
    "/pools/{pool_id}",
    response_model=PoolOut,
    responses={**problems(403, 404, 409, 412, 428), 200: {"headers": ETAG_HEADER}},
)
async def update_pool(
    pool_id: int,
    body: PoolUpdate,
    version: IfMatch,
    principal: CurrentPrincipal,
    session: SessionDep,
    response: Response,
) -> PoolOut:
    """Change a pool; `rules` and `members`, when given, replace the old ones (If-Match)."""
    pool = await service.update_pool(session, principal, pool_id, version, body)
    set_etag(response, pool.version)
    return await _one(session, principal, pool.id)


@router.delete(
    "/pools/{pool_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(403, 404, 409, 412, 428),
)
async def delete_pool(
    pool_id: int, version: IfMatch, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    """Delete an empty pool (409 while it holds customers)."""
    await service.delete_pool(session, principal, pool_id, version)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/pools/{pool_id}/customers", response_model=Page[CustomerOut], responses=problems(404))
async def pool_customers(
    pool_id: int,
    principal: CurrentPrincipal,
    session: SessionDep,
    query: Annotated[CustomerQuery, Depends(customer_query)],
) -> Page[CustomerOut]:
    """Customers in the pool (members), with the customer list's filters; hidden fields are
    withheld and named in `hidden_fields`."""
    await service.get_pool(session, principal, pool_id)
    query.pool_id = pool_id
    views, next_cursor = await customer_service.list_customers(session, principal, query)
    return Page[CustomerOut](
        items=[CustomerOut.model_validate(v.as_dict()) for v in views], next_cursor=next_cursor
    )


@router.post(
    "/pools/{pool_id}/claim",
    response_model=PoolActionOut,
    responses=problems(403, 404, 409),
    description="Take customers from the pool as their owner (pool members). The server checks "
    "each customer is still unowned and in this pool, your daily claim limit (counted "
    "atomically), your owned-customer cap and the cooling period." + ACTION_DOC,
)
async def claim_customers(
    pool_id: int, body: ClaimIn, principal: CurrentPrincipal, session: SessionDep
) -> PoolActionOut:
    """Claim customers from the pool."""
    results = await service.claim(
        session, principal, pool_id, body.customer_ids, zone=get_settings().business_timezone
    )
    return _action_out(results)


@router.post(
    "/pools/{pool_id}/assign",
    response_model=PoolActionOut,
    responses=problems(403, 404, 409),
    description="Give customers from the pool to a user (pool admins); the new owner is "
    "notified." + ACTION_DOC,
)
async def assign_customers(
    pool_id: int, body: AssignIn, principal: CurrentPrincipal, session: SessionDep
) -> PoolActionOut:
    """Assign customers from the pool to an owner."""
    results = await service.assign(
        session,
        principal,
        pool_id,
        body.customer_ids,
        body.owner_id,
        zone=get_settings().business_timezone,
    )
    return _action_out(results)


@router.post("/pools/{pool_id}/move", response_model=PoolActionOut, responses=problems(403, 404))
async def move_customers(
    pool_id: int, body: MoveIn, principal: CurrentPrincipal, session: SessionDep
) -> PoolActionOut:
    """Move customers from this pool to another (admins of both pools)."""
    results = await service.move(session, principal, pool_id, body.customer_ids, body.to_pool_id)
    return _action_out(results)


@router.get("/pools/{pool_id}/stats", response_model=PoolStatsOut, responses=problems(403, 404))
async def pool_stats(
    pool_id: int,
    principal: CurrentPrincipal,
    session: SessionDep,
    date_from: Annotated[QueryDate, Query(alias="from")],
    date_to: Annotated[QueryDate, Query(alias="to")],
) -> PoolStatsOut:
    """Inflow (reclaimed, released) and outflow (claimed, assigned) per rep between two days
    (inclusive, business calendar), for the pool's admins."""
    data = await service.stats(
        session, principal, pool_id, date_from, date_to, zone=get_settings().business_timezone
    )
    return PoolStatsOut.model_validate(data)


@router.post(
    "/customers/{customer_id}/release",
    response_model=CustomerOut,
    responses={**problems(403, 404, 409), 200: {"headers": ETAG_HEADER}},
)
async def release_customer(
    customer_id: int,
    body: ReleaseIn,
    principal: CurrentPrincipal,
    session: SessionDep,
    response: Response,
) -> CustomerOut:
    """Give up a customer you own into a pool you belong to, with a reason."""
    await service.release(session, principal, customer_id, body.pool_id, body.reason)
    return await customer_out(session, principal, customer_id, response)
