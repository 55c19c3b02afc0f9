"""Customer lifecycle: lock, freeze/abandon, recycle bin, transfer, offboarding, team members, merge
(SPEC B4, B7–B10)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, field_validator

from app.schemas.common import InputModel, OutputModel, UserRef

RecycleKind = Literal["deleted", "frozen", "abandoned", "merged"]
TeamAccess = Literal["read", "write"]
TransferInclude = Literal["contacts", "opportunities", "contracts"]
MAX_TRANSFER = 500


class ReasonIn(InputModel):
    reason: str = Field(min_length=1, max_length=500, description="Why (shown in the recycle bin).")


class RecycleBinItemOut(OutputModel):
    id: int
    name: str
    recycle_kind: RecycleKind
    recycle_reason: str | None
    deleted_at: dt.datetime
    deleted_by: UserRef | None
    owner: UserRef | None
    merged_into_id: int | None = Field(
        description="For merged customers: the customer it was merged into."
    )


class TransferIn(InputModel):
    customer_ids: list[int] = Field(min_length=1, max_length=MAX_TRANSFER)
    to_owner_id: int
    include: list[TransferInclude] = Field(
        default_factory=list,
        description="Also hand over what the previous owner owns of these customers: open "
        "opportunities, contracts not yet final. Contacts always follow their customer.",
    )
    previous_owner_access: Literal["none", "read", "write"] = Field(
        default="none",
        description="Keep each previous owner as a team member with this access (no expiry).",
    )

    @field_validator("customer_ids")
    @classmethod
    def _distinct(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("customer ids must be distinct")
        return value

    @field_validator("include")
    @classmethod
    def _distinct_include(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class TransferOut(OutputModel):
    transferred: list[int] = Field(
        description="Customers that changed owner (those already owned by the target are skipped)."
    )
    count: int


class OffboardIn(InputModel):
    to_owner_id: int = Field(description="Who takes over everything the leaving user owns.")


class OffboardOut(OutputModel):
    customers: int = Field(description="Customers handed over (live and in the recycle bin).")
    opportunities: int = Field(description="Open opportunities handed over.")
    contracts: int = Field(description="Contracts not yet final handed over.")
    visits: int = Field(description="Planned visits handed over (with their reminders).")


class MemberIn(InputModel):
    user_id: int
    access: TeamAccess = "read"
    expires_at: dt.datetime | None = Field(
        default=None, description="When the access ends (with a time zone); null: never."
    )

    @field_validator("expires_at")
    @classmethod
    def _future(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2026-12-31T18:00:00+08:00)")
        if value <= dt.datetime.now(dt.UTC):
            raise ValueError("must lie in the future")
        return value


class MemberOut(OutputModel):
    user: UserRef
    access: TeamAccess
    expires_at: dt.datetime | None
    created_at: dt.datetime


class MergeIn(InputModel):
    other_id: int = Field(
        description="The duplicate: its children and history move to this customer, then it "
        "goes to the recycle bin as merged."
    )
