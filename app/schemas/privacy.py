"""Personal data (SPEC J4): field levels per role, personal-data export, erasure, the log."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field, field_validator

from app.access import PERSONAL_FIELDS, FieldLevel
from app.schemas.common import InputModel, OutputModel, UserRef

FIELDS_DOC = (
    "Level per personal field: `hidden` (empty), `masked` (a masked display such as "
    "`138****5678` or `z***@example.com`; dates and locations empty), `read`, `edit`. Fields: "
    + ", ".join(f"`{name}` ({label})" for name, label in PERSONAL_FIELDS.items())
    + "."
)
LogAction = Literal[
    "export.customers",
    "export.opportunities",
    "export.contracts",
    "export.orders",
    "personal_data.export",
    "personal_data.erase",
]


class FieldPermissionsIn(InputModel):
    """The role's whole configuration: fields left out are `edit`."""

    fields: dict[str, FieldLevel] = Field(
        default_factory=dict, max_length=len(PERSONAL_FIELDS), description=FIELDS_DOC
    )

    @field_validator("fields")
    @classmethod
    def _known(cls, value: dict[str, FieldLevel]) -> dict[str, FieldLevel]:
        unknown = sorted(set(value) - set(PERSONAL_FIELDS))
        if unknown:
            raise ValueError(
                f"unknown fields: {', '.join(unknown)} (known: {', '.join(PERSONAL_FIELDS)})"
            )
        return value


class FieldPermissionsOut(OutputModel):
    role_id: int
    fields: dict[str, FieldLevel] = Field(description="Every personal field. " + FIELDS_DOC)
    version: int = Field(description="The role's version (its ETag).")


class PersonalDataOut(OutputModel):
    """Everything held about one customer, as the caller's field levels show it."""

    customer_id: int
    exported_at: dt.datetime
    customer: dict[str, Any] = Field(description="The record's columns, custom fields included.")
    tags: list[dict[str, Any]] = Field(description="Tag assignments, current and past.")
    team_members: list[dict[str, Any]]
    contacts: list[dict[str, Any]] = Field(description="Deleted contacts included.")
    follow_ups: list[dict[str, Any]]
    visits: list[dict[str, Any]]
    opportunities: list[dict[str, Any]]
    contracts: list[dict[str, Any]]
    payments: list[dict[str, Any]]
    orders: list[dict[str, Any]] = Field(description="Each with its `lines`.")
    ownership_history: list[dict[str, Any]]
    timeline: list[dict[str, Any]]


class EraseIn(InputModel):
    reason: str = Field(min_length=1, max_length=500)


class EraseOut(OutputModel):
    customer_id: int
    erased_fields: list[str] = Field(
        description="What this call emptied or replaced; empty when there was nothing left "
        "(a second call)."
    )
    contacts: int = Field(description="Contacts anonymised.")
    timeline_entries_scrubbed: int


class PersonalDataLogOut(OutputModel):
    id: int
    at: dt.datetime
    actor: UserRef | None
    api_key_id: int | None
    action: LogAction
    customer_id: int | None
    filters: dict[str, Any]
    row_count: int | None = Field(
        description="Rows written; null while an export is running or if it never finished."
    )
    reason: str | None
