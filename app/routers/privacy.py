"""Personal data (SPEC J4): field levels per role, personal-data export, erasure and their log.

Not for API keys (``app.main``, KEY_SCOPES): a key acts for a user but must never change what
users may see, nor take out or erase a person's data.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Response

from app.access import Principal
from app.deps import IfMatch, SessionDep, SessionMakerDep, require
from app.routers.common import WITH_ETAG, ApiRouter, problems, set_etag
from app.schemas.common import Page
from app.schemas.privacy import (
    EraseIn,
    EraseOut,
    FieldPermissionsIn,
    FieldPermissionsOut,
    LogAction,
    PersonalDataLogOut,
    PersonalDataOut,
)
from app.services import privacy as service

router = ApiRouter(tags=["personal data"])
OrgAdmin = Annotated[Principal, Depends(require("org.manage"))]
DataOfficer = Annotated[Principal, Depends(require("personal_data.manage"))]
Reason = Annotated[
    str, Query(min_length=1, max_length=500, description="Why (kept in the personal-data log).")
]


@router.get(
    "/roles/{role_id}/field-permissions",
    response_model=FieldPermissionsOut,
    responses={**problems(403, 404), **WITH_ETAG},
)
async def get_field_permissions(
    role_id: int, _: OrgAdmin, session: SessionDep, response: Response
) -> FieldPermissionsOut:
    """The role's level of every personal field (`edit` where nothing is configured)."""
    role, fields = await service.field_permissions(session, role_id)
    set_etag(response, role.version)
    return FieldPermissionsOut(role_id=role.id, fields=fields, version=role.version)


@router.put(
    "/roles/{role_id}/field-permissions",
    response_model=FieldPermissionsOut,
    responses={**problems(403, 404, 412, 428), **WITH_ETAG},
    description="Replaces the whole configuration of the role (fields left out become `edit`). "
    "A user with several roles gets, per field, the most permissive level any of them gives; "
    "a pool's hidden fields still apply on top (the most restrictive wins). Send If-Match with "
    "the role's ETag; the role's version moves when a level changes.",
)
async def set_field_permissions(
    role_id: int,
    body: FieldPermissionsIn,
    version: IfMatch,
    principal: OrgAdmin,
    session: SessionDep,
    response: Response,
) -> FieldPermissionsOut:
    """Set the role's field levels."""
    role, fields = await service.set_field_permissions(session, principal, role_id, version, body)
    set_etag(response, role.version)
    return FieldPermissionsOut(role_id=role.id, fields=fields, version=role.version)


@router.get(
    "/customers/{customer_id}/personal-data",
    response_model=PersonalDataOut,
    responses=problems(403, 404),
    description="Everything held about the customer and its contacts — the record with its "
    "custom fields, tags (with history), team, contacts (deleted ones too), follow-ups, visits, "
    "opportunities, contracts, payments, orders with lines, ownership history and the timeline "
    "— for a data subject's access request (PIPL art. 45, GDPR art. 15). Customers in the "
    "recycle bin included; outside your data scope: 404. Your field levels still apply. "
    "Logged with the reason.",
)
async def export_personal_data(
    customer_id: int,
    reason: Reason,
    principal: DataOfficer,
    session: SessionDep,
    maker: SessionMakerDep,
) -> PersonalDataOut:
    """Export everything held about a customer."""
    data = await service.personal_data(session, principal, customer_id)
    entry = service.log_entry(
        principal,
        "personal_data.export",
        customer_id=customer_id,
        row_count=service.record_count(data),
        reason=reason,
    )
    # A read's transaction is read-only: the entry is written in one of its own.
    await service.log_apart(maker, entry)
    return PersonalDataOut.model_validate(data)


@router.post(
    "/customers/{customer_id}/erase",
    response_model=EraseOut,
    responses=problems(403, 404),
    description="Anonymises the customer's personal data in place (PIPL art. 47, GDPR art. 17) "
    "and keeps orders, opportunities, contracts, payments, tags and ownership history — amounts, "
    "dates and stages — so analytics stay right. Erased: phones (and the phone index), e-mail, "
    "address, location, birth date, notes, text custom fields, a person's name (becomes "
    "`已删除客户 #<id>`; a company keeps its name), every contact's name, phones, e-mail, WeChat, "
    "birth date and notes, follow-up texts and check-in places, visit notes; earlier timeline "
    "entries have the old values replaced by `[erased]`. Safe to repeat: a second call finds "
    "nothing left. Logged with the reason.",
)
async def erase_customer(
    customer_id: int, body: EraseIn, principal: DataOfficer, session: SessionDep
) -> EraseOut:
    """Erase (anonymise) a customer's personal data."""
    result = await service.erase(session, principal, customer_id)
    session.add(
        service.log_entry(
            principal,
            "personal_data.erase",
            customer_id=customer_id,
            row_count=result["records"],
            reason=body.reason,
        )
    )
    return EraseOut.model_validate(result)


@router.get(
    "/personal-data-log",
    response_model=Page[PersonalDataLogOut],
    responses=problems(403),
    description="Every export (the four `/exports/*` files), personal-data export and erasure: "
    "who, when, which customer, the filters, the rows written and the reason; newest first.",
)
async def personal_data_log(
    _: DataOfficer,
    session: SessionDep,
    customer_id: int | None = None,
    action: LogAction | None = None,
    actor_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Page[PersonalDataLogOut]:
    """The log of exports and erasures."""
    items, next_cursor = await service.list_log(
        session,
        customer_id=customer_id,
        action=action,
        actor_id=actor_id,
        cursor=cursor,
        limit=limit,
    )
    return Page[PersonalDataLogOut](
        items=[PersonalDataLogOut.model_validate(i) for i in items], next_cursor=next_cursor
    )
