"""Schemas for API keys (SPEC J1)."""

from __future__ import annotations

import datetime as dt

from pydantic import AwareDatetime, Field

from app.schemas.common import InputModel, OutputModel
from app.services.api_keys import RESOURCES, SCOPES

SCOPES_DOC = (
    "What the key may do on top of its acting user's own rights: `<resource>:read` for GET, "
    "`<resource>:write` for changes. Resources: "
    + "; ".join(f"`{name}` ({what})" for name, what in RESOURCES.items())
    + ". Scopes: "
    + ", ".join(f"`{s}`" for s in SCOPES)
    + "."
)


class ApiKeyCreate(InputModel):
    name: str = Field(min_length=1, max_length=100, description="Which integration uses it.")
    scopes: list[str] = Field(min_length=1, max_length=len(SCOPES), description=SCOPES_DOC)
    acting_user_id: int | None = Field(
        default=None,
        description="The user the key acts as (their data scope and permissions): yourself "
        "when absent; another user only for organisation admins.",
    )
    expires_at: AwareDatetime | None = Field(
        default=None, description="After this moment the key is refused (absent: no expiry)."
    )


class ApiKeyOut(OutputModel):
    id: int
    name: str
    prefix: str = Field(description="The public part of the key (`kehu_<prefix>_…`).")
    scopes: list[str]
    acting_user_id: int
    created_by_id: int | None
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None = Field(description="Recorded at most once a minute.")
    last_used_from: str | None


class ApiKeyCreated(ApiKeyOut):
    token: str = Field(
        description="The key, shown this once: send it as `Authorization: Bearer <token>`. Only "
        "a hash is stored; a lost key is revoked and replaced."
    )
