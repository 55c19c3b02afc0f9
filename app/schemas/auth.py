from __future__ import annotations

from pydantic import Field

from app.schemas.common import InputModel, OutputModel


class TokenOut(OutputModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105  (the OAuth2 token type, not a secret)
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str


class RefreshIn(InputModel):
    refresh_token: str = Field(min_length=1, max_length=200)


class RoleRef(OutputModel):
    id: int
    name: str


class MeOut(OutputModel):
    id: int
    username: str
    display_name: str
    email: str | None
    department_id: int | None
    department_name: str | None
    is_admin: bool
    locale: str
    timezone: str
    roles: list[RoleRef]
    permissions: list[str]
    scopes: dict[str, str] = Field(description="Effective data scope per entity.")
