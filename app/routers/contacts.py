"""Single contacts (SPEC B3); listing and creation live under the customer."""

from __future__ import annotations

from fastapi import Response, status

from app.deps import CurrentPrincipal, IfMatch, SessionDep
from app.routers.common import ETAG_HEADER, ApiRouter, problems, set_etag
from app.schemas.customer import ContactOut, ContactUpdate
from app.services import contacts as service

router = ApiRouter(prefix="/contacts", tags=["contacts"])


@router.get(
    "/{contact_id}",
    response_model=ContactOut,
    responses={**problems(404), 200: {"headers": ETAG_HEADER}},
)
async def get_contact(
    contact_id: int, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> ContactOut:
    """Read one contact."""
    contact = await service.get_contact(session, principal, contact_id)
    set_etag(response, contact.version)
    return ContactOut.model_validate(contact)


@router.patch(
    "/{contact_id}",
    response_model=ContactOut,
    responses={**problems(403, 404, 412, 428), 200: {"headers": ETAG_HEADER}},
)
async def update_contact(
    contact_id: int,
    body: ContactUpdate,
    version: IfMatch,
    principal: CurrentPrincipal,
    session: SessionDep,
    response: Response,
) -> ContactOut:
    """Change some fields of a contact (send If-Match)."""
    contact = await service.update_contact(session, principal, contact_id, version, body)
    set_etag(response, contact.version)
    return ContactOut.model_validate(contact)


@router.delete(
    "/{contact_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problems(403, 404, 412, 428)
)
async def delete_contact(
    contact_id: int, version: IfMatch, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    """Delete a contact."""
    await service.delete_contact(session, principal, contact_id, version)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
