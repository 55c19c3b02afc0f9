"""The orders ledger: record orders (one or up to 10,000 per call), list and read them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response, status

from app.deps import CurrentPrincipal, SessionDep
from app.errors import ValidationFailed, field_error
from app.routers.common import ApiRouter, QueryDateTime, problems
from app.schemas.common import Page
from app.schemas.order import OrderBulkIn, OrderBulkOut, OrderIn, OrderOut
from app.services import orders as service

router = ApiRouter(tags=["orders"])


@router.post(
    "/orders",
    response_model=OrderOut,
    status_code=status.HTTP_201_CREATED,
    responses={**problems(409), 200: {"model": OrderOut, "description": "Known external id"}},
)
async def record_order(
    body: OrderIn, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> OrderOut:
    """Record an order (201); a known `external_id` answers the recorded order (200)."""
    (recorded,) = await service.record_orders(session, principal, [body])
    if recorded.status == "existing":
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/api/v1/orders/{recorded.id}"
    order = await service.get_order(session, principal, recorded.id)
    (view,) = await service.order_views(session, [order])
    return OrderOut.model_validate(view)


@router.post("/orders/bulk", response_model=OrderBulkOut, responses=problems(409))
async def record_orders_in_bulk(
    body: OrderBulkIn, principal: CurrentPrincipal, session: SessionDep
) -> OrderBulkOut:
    """Record up to 10,000 orders in one call, all or nothing (422 lists every problem by
    index); orders whose `external_id` is known already are answered as `existing`."""
    results = await service.record_orders(session, principal, body.orders)
    created = sum(1 for r in results if r.status == "created")
    return OrderBulkOut.model_validate(
        {
            "created": created,
            "existing": len(results) - created,
            "items": [r.__dict__ for r in results],
        }
    )


@router.get("/orders", response_model=Page[OrderOut], responses=problems())
async def list_orders(
    principal: CurrentPrincipal,
    session: SessionDep,
    customer_id: int | None = None,
    channel: Annotated[str | None, Query(max_length=32)] = None,
    ordered_from: QueryDateTime | None = None,
    ordered_to: QueryDateTime | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Page[OrderOut]:
    """Orders of the customers you may read, newest first."""
    for name, value in (("ordered_from", ordered_from), ("ordered_to", ordered_to)):
        if value is not None and value.tzinfo is None:
            raise ValidationFailed(errors=[field_error(name, "give a time zone", where="query")])
    rows, next_cursor = await service.list_orders(
        session,
        principal,
        customer_id=customer_id,
        channel=channel,
        ordered_from=ordered_from,
        ordered_to=ordered_to,
        cursor=cursor,
        limit=limit,
    )
    views = await service.order_views(session, rows)
    return Page[OrderOut](
        items=[OrderOut.model_validate(v) for v in views], next_cursor=next_cursor
    )


@router.get("/orders/{order_id:int}", response_model=OrderOut, responses=problems(404))
async def get_order(order_id: int, principal: CurrentPrincipal, session: SessionDep) -> OrderOut:
    """Read one order with its lines."""
    order = await service.get_order(session, principal, order_id)
    (view,) = await service.order_views(session, [order])
    return OrderOut.model_validate(view)
