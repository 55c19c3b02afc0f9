"""Contracts, payment plans and payments (SPEC F1–F3)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

from pydantic import Field, model_validator

from app.schemas.common import InputModel, OutputModel, UserRef
from app.schemas.opportunity import LineIn, LineOut, Money

ContractStatus = Literal[
    "draft", "pending_approval", "approved", "rejected", "signed", "active",
    "completed", "terminated", "expired", "void",
]  # fmt: skip
ContractAction = Literal[
    "submit", "approve", "reject", "sign", "activate", "complete", "terminate", "void"
]


class ContractCreate(InputModel):
    customer_id: int
    title: str = Field(min_length=1, max_length=200)
    opportunity_id: int | None = None
    amount: Money | None = Field(default=None, description="Defaults to the sum of the lines.")
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    notes: str | None = Field(default=None, max_length=5000)
    lines: list[LineIn] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _dates(self) -> ContractCreate:
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValueError("end_date must not come before start_date")
        if self.amount is None and not self.lines:
            raise ValueError("give an amount or lines")
        return self


class ContractUpdate(InputModel):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    amount: Money | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    notes: str | None = Field(default=None, max_length=5000)
    lines: list[LineIn] | None = Field(default=None, max_length=100)

    @model_validator(mode="after")
    def _not_null(self) -> ContractUpdate:
        for name in ("title", "amount", "lines"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class TransitionIn(InputModel):
    comment: str | None = Field(default=None, max_length=2000)


class PaymentPlanIn(InputModel):
    due_date: dt.date
    amount: Money = Field(gt=0)
    note: str | None = Field(default=None, max_length=500)


class PaymentPlanOut(OutputModel):
    id: int
    due_date: dt.date
    amount: Decimal
    paid: Decimal
    status: Literal["pending", "partly_paid", "paid", "overdue", "void"]
    note: str | None


class PaymentIn(InputModel):
    amount: Money = Field(gt=0)
    received_on: dt.date
    plan_id: int | None = None
    method: str | None = Field(default=None, max_length=32)
    note: str | None = Field(default=None, max_length=500)


class PaymentOut(OutputModel):
    id: int
    plan_id: int | None
    amount: Decimal
    received_on: dt.date
    method: str | None
    note: str | None
    created_at: dt.datetime


class ContractOut(OutputModel):
    id: int
    number: str
    customer_id: int
    customer_name: str
    opportunity_id: int | None
    owner: UserRef
    title: str
    amount: Decimal
    start_date: dt.date | None
    end_date: dt.date | None
    status: ContractStatus
    notes: str | None
    submitted_at: dt.datetime | None
    decided_at: dt.datetime | None
    signed_at: dt.datetime | None
    lines: list[LineOut]
    payment_plans: list[PaymentPlanOut]
    payments: list[PaymentOut]
    paid: Decimal
    allowed_actions: list[ContractAction] = Field(description="What the caller may do next.")
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class NumberSequenceIn(InputModel):
    prefix: str = Field(max_length=16, pattern=r"^[A-Za-z0-9\-_]*$")
    date_format: str = Field(
        pattern=r"^(|%Y|%Y%m|%Y%m%d|%y%m)$",
        description="strftime pattern of the date part, or empty",
    )
    padding: int = Field(ge=1, le=10)


class NumberSequenceOut(OutputModel):
    name: str
    prefix: str
    date_format: str
    padding: int
    next_number: str = Field(description="What the next document would be numbered.")
