"""Follow-ups, visits and today (SPEC D1, D2, D5)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

from pydantic import Field, field_validator, model_validator

from app.schemas.common import InputModel, OutputModel, UserRef
from app.schemas.pool import ReclaimWarning

FollowUpType = Literal["call", "visit", "message", "email", "meeting", "other", "return_visit"]
VisitStatus = Literal["planned", "completed", "cancelled"]
MAX_OFFSET_MINUTES = 30 * 24 * 60


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("give a time zone (e.g. 2026-11-23T09:00:00+08:00)")
    return value


class CheckIn(InputModel):
    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)
    accuracy_m: float | None = Field(default=None, ge=0, le=100_000)
    address: str | None = Field(default=None, max_length=300)


class CheckInOut(OutputModel):
    lat: float
    lng: float
    accuracy_m: float | None
    address: str | None
    distance_m: float | None = Field(description="Metres to the customer's recorded location.")


class FollowUpCreate(InputModel):
    customer_id: int
    type: FollowUpType
    content: str = Field(min_length=1, max_length=5000)
    contact_id: int | None = None
    occurred_at: dt.datetime | None = Field(default=None, description="Defaults to now.")
    next_follow_up_at: dt.datetime | None = None
    check_in: CheckIn | None = None
    satisfaction: int | None = Field(
        default=None, ge=1, le=5, description="After-sale satisfaction; required for return_visit."
    )

    _aware = field_validator("occurred_at", "next_follow_up_at")(_aware)

    @model_validator(mode="after")
    def _satisfaction(self) -> FollowUpCreate:
        if self.type == "return_visit" and self.satisfaction is None:
            raise ValueError("a return visit needs a satisfaction score (1-5)")
        if self.type != "return_visit" and self.satisfaction is not None:
            raise ValueError("only a return visit takes a satisfaction score")
        return self


class ContactRef(OutputModel):
    id: int
    name: str


class FollowUpOut(OutputModel):
    id: int
    customer_id: int
    customer_name: str
    type: FollowUpType
    content: str
    contact: ContactRef | None
    occurred_at: dt.datetime
    next_follow_up_at: dt.datetime | None
    check_in: CheckInOut | None
    satisfaction: int | None
    visit_id: int | None
    author: UserRef
    created_at: dt.datetime


def _offsets(value: list[int] | None) -> list[int] | None:
    if value is None:
        return None
    if any(not 0 <= v <= MAX_OFFSET_MINUTES for v in value):
        raise ValueError(f"reminder offsets are minutes between 0 and {MAX_OFFSET_MINUTES}")
    return sorted(set(value), reverse=True)


class VisitCreate(InputModel):
    customer_id: int
    starts_at: dt.datetime
    duration_minutes: int = Field(default=60, ge=5, le=720)
    note: str | None = Field(default=None, max_length=2000)
    reminder_offsets_minutes: list[int] = Field(
        default_factory=lambda: [30],
        max_length=5,
        description="Remind this many minutes before the start (0 = at the start).",
    )

    _aware = field_validator("starts_at")(_aware)
    _offsets = field_validator("reminder_offsets_minutes")(_offsets)


class VisitReschedule(InputModel):
    starts_at: dt.datetime
    duration_minutes: int | None = Field(default=None, ge=5, le=720)
    reminder_offsets_minutes: list[int] | None = Field(default=None, max_length=5)

    _aware = field_validator("starts_at")(_aware)
    _offsets = field_validator("reminder_offsets_minutes")(_offsets)


class VisitComplete(InputModel):
    content: str = Field(min_length=1, max_length=5000)
    check_in: CheckIn | None = None
    next_follow_up_at: dt.datetime | None = None
    contact_id: int | None = None

    _aware = field_validator("next_follow_up_at")(_aware)


class VisitCancel(InputModel):
    reason: str | None = Field(default=None, max_length=500)


class ReminderOut(OutputModel):
    id: int
    due_at: dt.datetime
    state: Literal["pending", "sent", "missed", "cancelled"]


class VisitOut(OutputModel):
    id: int
    customer_id: int
    customer_name: str
    owner: UserRef
    starts_at: dt.datetime
    duration_minutes: int
    note: str | None
    status: VisitStatus
    reminder_offsets_minutes: list[int]
    reminders: list[ReminderOut]
    follow_up_id: int | None
    completed_at: dt.datetime | None
    cancelled_at: dt.datetime | None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class CustomerBrief(OutputModel):
    id: int
    name: str
    level: str | None
    city: str | None
    last_follow_up_at: dt.datetime | None
    next_follow_up_at: dt.datetime | None


class RelationshipItem(OutputModel):
    kind: Literal["birthday", "anniversary"]
    customer_id: int
    contact_id: int | None
    name: str
    date: dt.date
    days_until: int


class ExpiringContract(OutputModel):
    id: int
    number: str
    title: str
    customer_id: int
    customer_name: str
    end_date: dt.date
    days_left: int


class OverduePayment(OutputModel):
    plan_id: int
    contract_id: int
    number: str
    customer_name: str
    due_date: dt.date
    outstanding: Decimal


class ApprovalItem(OutputModel):
    contract_id: int
    number: str
    title: str
    customer_name: str
    owner_name: str
    amount: Decimal
    submitted_at: dt.datetime | None


class TodayOut(OutputModel):
    date: dt.date
    timezone: str
    visits: list[VisitOut]
    due_follow_ups: list[CustomerBrief] = Field(
        description="Customers whose next follow-up falls today (in the caller's time zone)."
    )
    overdue_follow_ups: list[CustomerBrief] = Field(
        description="Customers whose next follow-up time has passed before today."
    )
    relationship: list[RelationshipItem]
    reclaim_warnings: list[ReclaimWarning] = Field(
        default_factory=list,
        description="Your customers that go to a pool soon unless you follow up, soonest first.",
    )
    expiring_contracts: list[ExpiringContract]
    overdue_payments: list[OverduePayment]
    approvals: list[ApprovalItem] = Field(description="Contracts waiting for your approval.")


class BriefFigure(OutputModel):
    value: Decimal | float | int | None
    previous: Decimal | float | int | None
    change: Decimal | float | int | None = Field(description="value - previous")
    change_pct: float | None = Field(description="change / previous (null when previous is 0)")


class BriefOut(OutputModel):
    period: Literal["day", "week", "month", "quarter"]
    start: dt.date
    end: dt.date = Field(description="Last day of the period (inclusive).")
    previous_start: dt.date
    timezone: str
    metrics: dict[str, BriefFigure]


class TrendBucket(OutputModel):
    start: dt.date
    value: Decimal | float | int | None


class TrendOut(OutputModel):
    metric: str
    granularity: Literal["day", "week", "month"]
    timezone: str
    buckets: list[TrendBucket]


class RankingRow(OutputModel):
    rank: int
    user: UserRef
    value: Decimal | float | int | None


class RankingOut(OutputModel):
    metric: str
    period: Literal["day", "week", "month", "quarter"]
    start: dt.date
    end: dt.date
    rows: list[RankingRow]


TargetMetric = Literal[
    "won_amount", "payments_received", "new_customers", "follow_ups", "visits",
    "new_opportunities", "contracts_signed",
]  # fmt: skip


class TargetIn(InputModel):
    user_id: int | None = None
    department_id: int | None = None
    month: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")
    metric: TargetMetric
    target: Decimal = Field(gt=0, max_digits=14, decimal_places=2, description="Money or a count.")


class TargetOut(OutputModel):
    id: int
    user_id: int | None
    department_id: int | None
    month: str
    metric: TargetMetric
    target: Decimal | int
    actual: Decimal | float | int | None
    completion: float | None = Field(description="actual / target")
    version: int
