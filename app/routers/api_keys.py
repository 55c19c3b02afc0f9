"""API keys for integrations (SPEC J1): admins create, list and revoke them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Response, status

from app.access import Principal
from app.deps import SessionDep, require
from app.routers.common import ApiRouter, problems
from app.schemas.api_key import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from app.services import api_keys as service

router = ApiRouter(tags=["integrations"])
Admin = Annotated[Principal, Depends(require("integration.manage"))]


@router.get("/api-keys", response_model=list[ApiKeyOut], responses=problems(403))
async def list_api_keys(_: Admin, session: SessionDep) -> list[ApiKeyOut]:
    """Every key, revoked ones included, oldest first; never the secret."""
    return [ApiKeyOut.model_validate(k) for k in await service.list_keys(session)]


@router.post(
    "/api-keys",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    responses=problems(403),
)
async def create_api_key(
    body: ApiKeyCreate, principal: Admin, session: SessionDep, response: Response
) -> ApiKeyCreated:
    """Create a key; the response holds the token, which is never shown again."""
    key, token = await service.create_key(
        session,
        principal,
        name=body.name,
        scopes=body.scopes,
        acting_user_id=body.acting_user_id,
        expires_at=body.expires_at,
    )
    response.headers["Location"] = f"/api/v1/api-keys/{key.id}"
    return ApiKeyCreated.model_validate(
        {**ApiKeyOut.model_validate(key).model_dump(), "token": token}
    )


@router.get("/api-keys/{key_id}", response_model=ApiKeyOut, responses=problems(403, 404))
async def get_api_key(key_id: int, _: Admin, session: SessionDep) -> ApiKeyOut:
    """One key with its last use."""
    return ApiKeyOut.model_validate(await service.get_key(session, key_id))


@router.post("/api-keys/{key_id}/revoke", response_model=ApiKeyOut, responses=problems(403, 404))
async def revoke_api_key(key_id: int, _: Admin, session: SessionDep) -> ApiKeyOut:
    """Revoke a key for good: requests with it get 401 from now on. Revoking twice is harmless."""
    return ApiKeyOut.model_validate(await service.revoke_key(session, key_id))
