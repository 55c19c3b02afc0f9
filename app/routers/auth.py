"""Login, token refresh, logout and the caller's own profile (SPEC A2)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import select

from app.config import get_settings
from app.deps import CurrentPrincipal, SessionDep, SessionMakerDep, TokenSettingsDep
from app.models import Department, Role, User
from app.routers.common import ApiRouter, problems
from app.schemas.auth import MeOut, RefreshIn, RoleRef, TokenOut
from app.services import auth as auth_service

router = ApiRouter(tags=["auth"])


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/auth/token", response_model=TokenOut, responses=problems(429))
async def login(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    maker: SessionMakerDep,
    session: SessionDep,
    tokens: TokenSettingsDep,
) -> TokenOut:
    """Log in with username and password (OAuth2 password flow)."""
    user_id = await auth_service.authenticate(
        maker,
        get_settings(),
        username=form.username,
        password=form.password,
        address=_client_address(request),
    )
    issued = await auth_service.issue_tokens(session, tokens, user_id)
    return TokenOut(
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        expires_in=issued.expires_in,
    )


@router.post("/auth/refresh", response_model=TokenOut, responses=problems())
async def refresh_token(
    body: RefreshIn, maker: SessionMakerDep, tokens: TokenSettingsDep
) -> TokenOut:
    """Exchange a refresh token for a new token pair (the old refresh token is spent)."""
    issued = await auth_service.rotate_refresh_token(maker, tokens, body.refresh_token)
    return TokenOut(
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        expires_in=issued.expires_in,
    )


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, responses=problems())
async def logout(body: RefreshIn, session: SessionDep) -> Response:
    """Revoke a refresh token and every token rotated from the same login."""
    await auth_service.revoke_refresh_token(session, body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=MeOut, responses=problems())
async def read_me(principal: CurrentPrincipal, session: SessionDep) -> MeOut:
    """The caller, with roles, permissions and data scopes."""
    user, department_name = (
        await session.execute(
            select(User, Department.name)
            .outerjoin(Department, Department.id == User.department_id)
            .where(User.id == principal.user_id)
        )
    ).one()
    roles = (await session.scalars(select(Role).where(Role.id.in_(principal.role_ids)))).all()
    return MeOut(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        email=user.email,
        department_id=user.department_id,
        department_name=department_name,
        is_admin=principal.is_admin,
        locale=user.locale,
        timezone=user.timezone,
        roles=[RoleRef(id=r.id, name=r.name) for r in roles],
        permissions=sorted(principal.permissions),
        scopes={k: v.value for k, v in principal.scopes.items()},
    )
