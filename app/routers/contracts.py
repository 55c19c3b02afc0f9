"""Contracts, their workflow, payment plans and payments (SPEC F1–F3)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Response

from app.access import Principal
from app.deps import CurrentPrincipal, IfMatch, SessionDep, require
from app.models import Contract
from app.routers.common import ETAG_HEADER, WITH_ETAG, ApiRouter, problems, set_etag
from app.schemas.common import Page
from app.schemas.contract import (
    ContractCreate,
    ContractOut,
    ContractStatus,
    ContractUpdate,
    NumberSequenceIn,
    NumberSequenceOut,
    PaymentIn,
    PaymentOut,
    PaymentPlanIn,
    PaymentPlanOut,
    TransitionIn,
)
from app.schemas.opportunity import from_cents
from app.services import contracts as service

router = ApiRouter(tags=["contracts"])
ConfigAdmin = Annotated[Principal, Depends(require("config.manage"))]
TRANSITION_RESPONSES = problems(403, 404, 409, 412, 428)


async def _out(
    session: SessionDep,
    principal: CurrentPrincipal,
    contract: Contract,
    response: Response | None = None,
) -> ContractOut:
    [view] = await service.contract_views(session, principal, [contract])
    if response is not None:
        set_etag(response, contract.version)
    return ContractOut.model_validate(view)


@router.post(
    "/contracts",
    response_model=ContractOut,
    status_code=201,
    responses={**problems(403), 201: {"headers": ETAG_HEADER}},
)
async def create_contract(
    body: ContractCreate, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> ContractOut:
    """Draft a contract; it is numbered from the contract sequence."""
    return await _out(
        session, principal, await service.create_contract(session, principal, body), response
    )


@router.get("/contracts", response_model=Page[ContractOut], responses=problems())
async def list_contracts(
    principal: CurrentPrincipal,
    session: SessionDep,
    status: ContractStatus | None = None,
    customer_id: int | None = None,
    owner_id: int | None = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[ContractOut]:
    """Contracts in your scope, most recently changed first."""
    rows, next_cursor = await service.list_contracts(
        session,
        principal,
        status=status,
        customer_id=customer_id,
        owner_id=owner_id,
        cursor=cursor,
        limit=limit,
    )
    views = await service.contract_views(session, principal, rows)
    return Page[ContractOut](
        items=[ContractOut.model_validate(v) for v in views], next_cursor=next_cursor
    )


@router.get(
    "/contracts/{contract_id}", response_model=ContractOut, responses={**problems(404), **WITH_ETAG}
)
async def get_contract(
    contract_id: int, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> ContractOut:
    """Read a contract with lines, payment plans, payments and the actions you may take."""
    return await _out(
        session, principal, await service.get_contract(session, principal, contract_id), response
    )


@router.patch(
    "/contracts/{contract_id}",
    response_model=ContractOut,
    responses=problems(403, 404, 409, 412, 428),
)
async def update_contract(
    contract_id: int,
    body: ContractUpdate,
    version: IfMatch,
    principal: CurrentPrincipal,
    session: SessionDep,
    response: Response,
) -> ContractOut:
    """Edit a draft or rejected contract (later ones change only through the workflow)."""
    contract = await service.update_contract(session, principal, contract_id, version, body)
    return await _out(session, principal, contract, response)


def _transition_route(action: str, summary: str) -> None:
    async def run(
        contract_id: int,
        body: TransitionIn,
        version: IfMatch,
        principal: CurrentPrincipal,
        session: SessionDep,
        response: Response,
    ) -> ContractOut:
        contract = await service.transition(session, principal, contract_id, version, action, body)
        return await _out(session, principal, contract, response)

    run.__doc__ = summary
    router.add_api_route(
        f"/contracts/{{contract_id}}/{action}",
        run,
        methods=["POST"],
        response_model=ContractOut,
        responses=TRANSITION_RESPONSES,
        name=f"{action}_contract",
        summary=summary,
    )


for _action, _summary in (
    ("submit", "Submit a draft or rejected contract for approval."),
    ("approve", "Approve a contract (the owner's department manager or an approver)."),
    ("reject", "Reject a contract, with a comment."),
    ("sign", "Sign an approved contract: customer signed, opportunity won, order booked."),
    ("activate", "Start a signed contract."),
    ("complete", "Complete an active contract."),
    ("terminate", "Terminate a signed or active contract."),
    ("void", "Void a contract that was never signed."),
):
    _transition_route(_action, _summary)


@router.post(
    "/contracts/{contract_id}/payment-plans",
    response_model=PaymentPlanOut,
    status_code=201,
    responses=problems(403, 404, 409),
)
async def add_payment_plan(
    contract_id: int, body: PaymentPlanIn, principal: CurrentPrincipal, session: SessionDep
) -> PaymentPlanOut:
    """Add an instalment (the instalments may not exceed the contract amount)."""
    plan = await service.add_payment_plan(session, principal, contract_id, body)
    return PaymentPlanOut.model_validate(service.plan_view(plan))


@router.post(
    "/contracts/{contract_id}/payments",
    response_model=PaymentOut,
    status_code=201,
    responses=problems(403, 404, 409),
)
async def record_payment(
    contract_id: int, body: PaymentIn, principal: CurrentPrincipal, session: SessionDep
) -> PaymentOut:
    """Record money received, optionally against an instalment."""
    payment = await service.record_payment(session, principal, contract_id, body)
    return PaymentOut(
        id=payment.id,
        plan_id=payment.plan_id,
        amount=from_cents(payment.amount_cents),
        received_on=payment.received_on,
        method=payment.method,
        note=payment.note,
        created_at=payment.created_at,
    )


@router.get("/number-sequences/contract", response_model=NumberSequenceOut, responses=problems())
async def get_contract_numbering(_: CurrentPrincipal, session: SessionDep) -> NumberSequenceOut:
    """How contracts are numbered, and the next number."""
    return NumberSequenceOut.model_validate(await service.get_sequence(session))


@router.put("/number-sequences/contract", response_model=NumberSequenceOut, responses=problems(403))
async def set_contract_numbering(
    body: NumberSequenceIn, _: ConfigAdmin, session: SessionDep
) -> NumberSequenceOut:
    """Change the contract number prefix, date part or counter width."""
    return NumberSequenceOut.model_validate(await service.set_sequence(session, body))
