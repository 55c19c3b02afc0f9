from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from app.schemas.common import InputModel, OutputModel, UserRef
from app.schemas.customer import Level

RuleKind = Literal["no_follow_up", "no_opportunity", "no_deal"]
HiddenField = Literal["phones", "email", "address", "location", "contacts", "notes", "birth_date"]
PoolRole = Literal["admin", "member"]
Days = int


class PoolRuleIn(InputModel):
    kind: RuleKind = Field(
        description="no_follow_up: no follow-up logged; no_opportunity: no opportunity created; "
        "no_deal: no contract signed — each for `days` since the later of that event and the "
        "moment the current owner received the customer."
    )
    days: int = Field(ge=1, le=3650)
    level_days: dict[Level, int] = Field(
        default_factory=dict, description="Days per customer level, overriding `days`."
    )

    @field_validator("level_days")
    @classmethod
    def _days_range(cls, value: dict[str, int]) -> dict[str, int]:
        for level, days in value.items():
            if not 1 <= days <= 3650:
                raise ValueError(f"days for level {level} must lie between 1 and 3650")
        return value


class PoolRuleOut(OutputModel):
    kind: RuleKind
    days: int
    level_days: dict[str, int]


class PoolMemberIn(InputModel):
    role: PoolRole = "member"
    user_id: int | None = None
    department_id: int | None = Field(
        default=None, description="All users of the department and its child departments."
    )

    @model_validator(mode="after")
    def _one_subject(self) -> PoolMemberIn:
        if (self.user_id is None) == (self.department_id is None):
            raise ValueError("give either user_id or department_id")
        if self.role == "admin" and self.user_id is None:
            raise ValueError("a pool admin is a user")
        return self


class DepartmentRef(OutputModel):
    id: int
    name: str


class PoolMemberOut(OutputModel):
    role: PoolRole
    user: UserRef | None
    department: DepartmentRef | None


def _unique_rules(value: list[PoolRuleIn] | None) -> list[PoolRuleIn] | None:
    if value is not None and len({r.kind for r in value}) != len(value):
        raise ValueError("one rule per kind")
    return value


class PoolFields(InputModel):
    description: str = Field(default="", max_length=500)
    enabled: bool = True
    exclude_signed: bool = Field(
        default=False, description="Never reclaim customers with a signed deal."
    )
    exclude_open_opportunity: bool = Field(
        default=False, description="Never reclaim customers with an open opportunity."
    )
    warning_days: int = Field(
        default=3, ge=0, le=90, description="Warn the owner this many days before (0: never)."
    )
    daily_claim_limit: int | None = Field(
        default=None, ge=0, le=10_000, description="Claims per member per day (null: no limit)."
    )
    cooling_days: int = Field(
        default=0, ge=0, le=365, description="Days before a previous owner may claim it back."
    )
    hidden_fields: list[HiddenField] = Field(
        default_factory=list,
        description="Withheld from everyone but the pool's admins while a customer is in the "
        "pool (`contacts` hides the contacts; `phones`/`email` also those of contacts).",
    )
    rules: list[PoolRuleIn] = Field(default_factory=list, max_length=3)
    members: list[PoolMemberIn] = Field(default_factory=list, max_length=500)

    _rules = field_validator("rules")(_unique_rules)


class PoolCreate(PoolFields):
    name: str = Field(min_length=1, max_length=100)


class PoolUpdate(InputModel):
    """Fields present are changed; `rules` and `members`, when given, replace the old ones."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None
    exclude_signed: bool | None = None
    exclude_open_opportunity: bool | None = None
    warning_days: int | None = Field(default=None, ge=0, le=90)
    daily_claim_limit: int | None = Field(default=None, ge=0, le=10_000)
    cooling_days: int | None = Field(default=None, ge=0, le=365)
    hidden_fields: list[HiddenField] | None = None
    rules: list[PoolRuleIn] | None = Field(default=None, max_length=3)
    members: list[PoolMemberIn] | None = Field(default=None, max_length=500)

    _rules = field_validator("rules")(_unique_rules)

    @model_validator(mode="after")
    def _not_null(self) -> PoolUpdate:
        nullable = {"daily_claim_limit"}
        for name in self.model_fields_set - nullable:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class PoolOut(OutputModel):
    id: int
    name: str
    description: str
    enabled: bool
    exclude_signed: bool
    exclude_open_opportunity: bool
    warning_days: int
    daily_claim_limit: int | None
    cooling_days: int
    hidden_fields: list[str]
    rules: list[PoolRuleOut]
    members: list[PoolMemberOut]
    customer_count: int
    my_role: PoolRole | None = Field(description="The caller's role in this pool, if any.")
    claims_left_today: int | None = Field(
        description="Claims the caller may still make today (null: no limit)."
    )
    version: int


class CustomerIds(InputModel):
    customer_ids: list[int] = Field(min_length=1, max_length=200)

    @field_validator("customer_ids")
    @classmethod
    def _distinct(cls, value: list[int]) -> list[int]:
        return list(dict.fromkeys(value))


class ClaimIn(CustomerIds):
    pass


class AssignIn(CustomerIds):
    owner_id: int


class MoveIn(CustomerIds):
    to_pool_id: int


class ReleaseIn(InputModel):
    pool_id: int
    reason: str = Field(min_length=1, max_length=300)


Outcome = Literal["claimed", "assigned", "moved", "refused"]
RefusalReason = Literal[
    "not_found",
    "not_in_pool",
    "already_owned",
    "pool_disabled",
    "cooling_period",
    "owned_cap",
    "daily_limit",
]


class CustomerOutcome(OutputModel):
    customer_id: int
    outcome: Outcome
    reason: RefusalReason | None = None
    detail: str | None = None
    until: dt.datetime | None = Field(
        default=None, description="cooling_period: when you may claim the customer again."
    )
    limit: int | None = Field(
        default=None, description="daily_limit / owned_cap: the limit that was reached."
    )


class PoolActionOut(OutputModel):
    results: list[CustomerOutcome]
    succeeded: int
    refused: int


class PoolStatsRow(OutputModel):
    user: UserRef
    reclaimed: int = Field(description="Customers taken back from this rep by the reclaim job.")
    released: int = Field(description="Customers this rep released into the pool.")
    claimed: int = Field(description="Customers this rep claimed from the pool.")
    assigned: int = Field(description="Customers a pool admin assigned to this rep.")


class PoolStatsOut(OutputModel):
    pool_id: int
    date_from: dt.date = Field(alias="from")
    date_to: dt.date = Field(alias="to")
    rows: list[PoolStatsRow]
    inflow: int = Field(description="Reclaimed plus released.")
    outflow: int = Field(description="Claimed plus assigned.")
    in_pool: int = Field(description="Customers in the pool now.")

    model_config = ConfigDict(populate_by_name=True, from_attributes=True)


class ReclaimWarning(OutputModel):
    customer_id: int
    name: str
    pool_id: int
    pool_name: str
    due_at: dt.datetime
    days_left: int
    reason: str
