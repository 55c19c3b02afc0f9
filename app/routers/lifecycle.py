"""Customer lifecycle: lock, freeze/abandon, recycle bin, transfer, team members, merge
(SPEC B4, B7–B10)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Response, status

from app.access import Principal
from app.deps import CurrentPrincipal, SessionDep, require
from app.routers.common import WITH_ETAG, ApiRouter, problems
from app.routers.customers import customer_out
from app.schemas.common import Page
from app.schemas.customer import CustomerOut
from app.schemas.lifecycle import (
    MemberIn,
    MemberOut,
    MergeIn,
    OffboardIn,
    OffboardOut,
    ReasonIn,
    RecycleBinItemOut,
    RecycleKind,
    TransferIn,
    TransferOut,
)
from app.services import lifecycle as service

router = ApiRouter(tags=["customers"])
Admin = Annotated[Principal, Depends(require("org.manage"))]
NO_CONTENT = status.HTTP_204_NO_CONTENT


# --- lock ----------------------------------------------------------------------------------------


@router.post(
    "/customers/{customer_id}/lock",
    response_model=CustomerOut,
    responses={**problems(403, 404, 409), **WITH_ETAG},
    description="A locked customer is never reclaimed into a pool. The owner's locked-customer "
    "cap applies (409 `cap-exceeded` with `cap`); only a customer with an owner can be locked. "
    "Locking a locked customer changes nothing.",
)
async def lock_customer(
    customer_id: int, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> CustomerOut:
    """Lock a customer against reclaim."""
    await service.lock(session, principal, customer_id)
    return await customer_out(session, principal, customer_id, response)


@router.post(
    "/customers/{customer_id}/unlock",
    response_model=CustomerOut,
    responses={**problems(403, 404), **WITH_ETAG},
)
async def unlock_customer(
    customer_id: int, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> CustomerOut:
    """Unlock a customer (its pool's reclaim rules apply again)."""
    await service.unlock(session, principal, customer_id)
    return await customer_out(session, principal, customer_id, response)


# --- freeze / abandon / recycle bin --------------------------------------------------------------


@router.post(
    "/customers/{customer_id}/freeze",
    status_code=NO_CONTENT,
    responses=problems(403, 404),
    description="The customer goes to the recycle bin with the reason; it keeps everything "
    "it has and can be restored.",
)
async def freeze_customer(
    customer_id: int, body: ReasonIn, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    """Freeze a customer with no potential for now."""
    await service.put_in_recycle_bin(session, principal, customer_id, "frozen", body.reason)
    return Response(status_code=NO_CONTENT)


@router.post(
    "/customers/{customer_id}/abandon",
    status_code=NO_CONTENT,
    responses=problems(403, 404),
    description="The customer goes to the recycle bin with the reason; it keeps everything "
    "it has and can be restored until the bin is purged.",
)
async def abandon_customer(
    customer_id: int, body: ReasonIn, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    """Abandon a customer with no potential."""
    await service.put_in_recycle_bin(session, principal, customer_id, "abandoned", body.reason)
    return Response(status_code=NO_CONTENT)


@router.get(
    "/recycle-bin",
    response_model=Page[RecycleBinItemOut],
    responses=problems(),
    description="Deleted, frozen, abandoned and merged customers in your data scope, most "
    "recently binned first. Customers stay here until purged after the retention period "
    "(those with contracts or orders are never purged).",
)
async def list_recycle_bin(
    principal: CurrentPrincipal,
    session: SessionDep,
    q: Annotated[str | None, Query(max_length=100, description="Part of the name.")] = None,
    kind: RecycleKind | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Page[RecycleBinItemOut]:
    """List the recycle bin."""
    items, next_cursor = await service.recycle_bin(
        session, principal, q=q, kind=kind, limit=limit, cursor=cursor
    )
    return Page[RecycleBinItemOut](
        items=[RecycleBinItemOut.model_validate(i) for i in items], next_cursor=next_cursor
    )


@router.post(
    "/customers/{customer_id}/restore",
    response_model=CustomerOut,
    responses={**problems(403, 404, 409), **WITH_ETAG},
    description="Takes the customer out of the recycle bin with its contacts, follow-ups, "
    "opportunities and history. 409 for a merged customer, or when the owner's cap of owned "
    "customers is full (`cap-exceeded`).",
)
async def restore_customer(
    customer_id: int, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> CustomerOut:
    """Restore a customer from the recycle bin."""
    await service.restore(session, principal, customer_id)
    return await customer_out(session, principal, customer_id, response)


# --- transfer and offboarding --------------------------------------------------------------------


@router.post(
    "/customers/transfer",
    response_model=TransferOut,
    responses=problems(403, 404, 409),
    description="All or nothing: every customer must be one you may change (404 names the "
    "first not found, 403 if one is read-only); the new owner must be an active user in your "
    "data scope (422) with room under their cap of owned customers (409 `cap-exceeded`). "
    "Customers the new owner has already are skipped. The reclaim clock restarts and a lock is "
    "released. With `include`, the previous owner's open opportunities and unfinished contracts "
    "of these customers go along (contacts always follow their customer). Ownership history is "
    "recorded and the new and previous owners are notified.",
)
async def transfer_customers(
    body: TransferIn, principal: CurrentPrincipal, session: SessionDep
) -> TransferOut:
    """Transfer customers to another owner."""
    moved = await service.transfer(session, principal, body)
    return TransferOut(transferred=moved, count=len(moved))


@router.post(
    "/users/{user_id}/offboard",
    response_model=OffboardOut,
    responses=problems(403, 404, 409),
    description="For admins (`org.manage`). Everything the user owns — customers (live and in "
    "the recycle bin), open opportunities, contracts not yet final, planned visits with their "
    "reminders — goes to `to_owner_id` in one transaction, recorded as transferred "
    "(reason: offboarded); caps do not block it. The user is then deactivated and signed out "
    "everywhere.",
)
async def offboard_user(
    user_id: int, body: OffboardIn, principal: Admin, session: SessionDep
) -> OffboardOut:
    """Offboard a leaving user: hand over everything they own and deactivate them."""
    result = await service.offboard(session, principal, user_id, body.to_owner_id)
    return OffboardOut(
        customers=len(result.customers),
        opportunities=result.opportunities,
        contracts=result.contracts,
        visits=result.visits,
    )


# --- team members --------------------------------------------------------------------------------


@router.get(
    "/customers/{customer_id}/members",
    response_model=list[MemberOut],
    responses=problems(404),
)
async def list_customer_members(
    customer_id: int, principal: CurrentPrincipal, session: SessionDep
) -> list[MemberOut]:
    """The customer's team members (unexpired), earliest added first."""
    rows = await service.list_members(session, principal, customer_id)
    return [MemberOut.model_validate(r) for r in rows]


@router.post(
    "/customers/{customer_id}/members",
    response_model=MemberOut,
    status_code=status.HTTP_201_CREATED,
    responses=problems(403, 404),
    description="Gives an active user (not the owner) read or read-write access, optionally "
    "until `expires_at`. A user already on the team gets the new access and expiry.",
)
async def add_customer_member(
    customer_id: int, body: MemberIn, principal: CurrentPrincipal, session: SessionDep
) -> MemberOut:
    """Add or change a team member."""
    return MemberOut.model_validate(await service.put_member(session, principal, customer_id, body))


@router.delete(
    "/customers/{customer_id}/members/{user_id}",
    status_code=NO_CONTENT,
    responses=problems(403, 404),
)
async def remove_customer_member(
    customer_id: int, user_id: int, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    """Remove a team member."""
    await service.remove_member(session, principal, customer_id, user_id)
    return Response(status_code=NO_CONTENT)


# --- merge ---------------------------------------------------------------------------------------


@router.post(
    "/customers/{customer_id}/merge",
    response_model=CustomerOut,
    responses={**problems(403, 404), **WITH_ETAG},
    description="Merges the duplicate `other_id` into this customer: its contacts, follow-ups, "
    "visits, opportunities, contracts, orders, tags, team members and history move here, and "
    "fields empty here are filled from it. The duplicate goes to the recycle bin as merged "
    "(it cannot be restored). Both must be customers you may change.",
)
async def merge_customers(
    customer_id: int,
    body: MergeIn,
    principal: CurrentPrincipal,
    session: SessionDep,
    response: Response,
) -> CustomerOut:
    """Merge a duplicate into this customer."""
    await service.merge(session, principal, customer_id, body.other_id)
    return await customer_out(session, principal, customer_id, response)
