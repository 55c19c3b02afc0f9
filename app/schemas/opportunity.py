"""Products, pipelines, lost reasons and opportunities (SPEC E1, E2). Money: decimal, 2 places."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, model_validator

from app.schemas.common import InputModel, OutputModel, UserRef

Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]
StageKind = Literal["open", "won", "lost", "invalid"]
ForecastCategory = Literal["pipeline", "best_case", "commit", "closed", "omitted"]
OpportunityStatus = Literal["open", "won", "lost", "invalid"]


def to_cents(value: Decimal) -> int:
    return int((value * 100).to_integral_value())


def from_cents(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


class ProductCreate(InputModel):
    name: str = Field(min_length=1, max_length=200)
    sku: str | None = Field(default=None, max_length=64)
    category: str | None = Field(default=None, max_length=100)
    unit_price: Money = Decimal(0)
    unit_cost: Money = Decimal(0)
    active: bool = True


class ProductUpdate(InputModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    sku: str | None = Field(default=None, max_length=64)
    category: str | None = Field(default=None, max_length=100)
    unit_price: Money | None = None
    unit_cost: Money | None = None
    active: bool | None = None


class ProductOut(OutputModel):
    id: int
    name: str
    sku: str | None
    category: str | None
    unit_price: Decimal
    unit_cost: Decimal
    active: bool
    version: int


class LostReasonIn(InputModel):
    name: str = Field(min_length=1, max_length=100)
    active: bool = True
    position: int = 0


class LostReasonOut(OutputModel):
    id: int
    name: str
    active: bool
    position: int


class StageIn(InputModel):
    name: str = Field(min_length=1, max_length=100)
    probability: int = Field(ge=0, le=100)
    stale_days: int | None = Field(default=None, ge=1, le=3650)
    kind: StageKind = "open"
    forecast_category: ForecastCategory | None = Field(
        default=None, description="Defaults: open → pipeline, won → closed, lost/invalid → omitted."
    )


class StageUpdate(InputModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    probability: int | None = Field(default=None, ge=0, le=100)
    stale_days: int | None = Field(default=None, ge=1, le=3650)
    forecast_category: ForecastCategory | None = None
    position: int | None = Field(default=None, ge=0)


class StageOut(OutputModel):
    id: int
    pipeline_id: int
    name: str
    position: int
    probability: int
    stale_days: int | None
    kind: StageKind
    forecast_category: ForecastCategory


class PipelineCreate(InputModel):
    name: str = Field(min_length=1, max_length=100)
    is_default: bool = False
    stages: list[StageIn] = Field(
        min_length=1,
        max_length=30,
        description="In order. Won, lost and invalid end stages are added when not given.",
    )


class PipelineUpdate(InputModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    is_default: bool | None = None


class PipelineOut(OutputModel):
    id: int
    name: str
    is_default: bool
    version: int
    stages: list[StageOut]


class LineIn(InputModel):
    product_id: int
    quantity: int = Field(ge=1, le=1_000_000)
    unit_price: Money | None = Field(default=None, description="Defaults to the product's price.")


class LineOut(OutputModel):
    id: int
    product_id: int
    product_name: str
    quantity: int
    unit_price: Decimal
    total: Decimal


class OpportunityCreate(InputModel):
    customer_id: int
    title: str = Field(min_length=1, max_length=200)
    pipeline_id: int | None = Field(default=None, description="Defaults to the default pipeline.")
    stage_id: int | None = Field(default=None, description="An open stage; defaults to the first.")
    amount: Money | None = Field(default=None, description="Defaults to the sum of the lines.")
    expected_close_date: dt.date | None = None
    lines: list[LineIn] = Field(default_factory=list, max_length=100)


class OpportunityUpdate(InputModel):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    amount: Money | None = None
    expected_close_date: dt.date | None = None
    forecast_category: ForecastCategory | None = Field(
        default=None, description="Override the stage's category (null: back to the stage's)."
    )
    lines: list[LineIn] | None = Field(default=None, max_length=100)

    @model_validator(mode="after")
    def _not_null(self) -> OpportunityUpdate:
        for name in ("title", "amount", "lines"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class StageMove(InputModel):
    stage_id: int
    note: str | None = Field(default=None, max_length=1000)


class WinIn(InputModel):
    amount: Money | None = Field(default=None, description="The final amount, if it changed.")
    note: str | None = Field(default=None, max_length=1000)


class LoseIn(InputModel):
    lost_reason_id: int
    note: str | None = Field(default=None, max_length=1000)


class OpportunityOut(OutputModel):
    id: int
    customer_id: int
    customer_name: str
    title: str
    pipeline_id: int
    stage: StageOut
    status: OpportunityStatus
    amount: Decimal
    weighted_amount: Decimal
    expected_close_date: dt.date | None
    owner: UserRef
    forecast_category: ForecastCategory
    forecast_category_overridden: bool
    lost_reason: LostReasonOut | None
    close_note: str | None
    closed_at: dt.datetime | None
    stage_entered_at: dt.datetime
    lines: list[LineOut]
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class HistoryOut(OutputModel):
    stage_id: int
    stage_name: str
    status: OpportunityStatus
    amount: Decimal
    expected_close_date: dt.date | None
    owner_id: int
    entered_at: dt.datetime
    left_at: dt.datetime | None


class FunnelStage(OutputModel):
    stage_id: int
    name: str
    kind: StageKind
    probability: int
    count: int
    amount: Decimal
    weighted_amount: Decimal
    avg_days_in_stage: float | None
    reached: int | None = Field(description="Open stages: opportunities that got this far.")
    conversion_to_next: float | None = Field(
        description="Open stages: reached(next open stage, or won) / reached(this stage)."
    )


class FunnelOut(OutputModel):
    pipeline_id: int
    as_of: dt.datetime = Field(description="The moment the snapshot describes.")
    stages: list[FunnelStage]
    open_count: int
    open_amount: Decimal
    weighted_open_amount: Decimal
    won_count: int
    lost_count: int
    win_rate: float | None = Field(description="won / (won + lost) among those closed by as_of.")


class MovementItem(OutputModel):
    opportunity_id: int
    title: str
    from_stage: str | None
    to_stage: str
    amount: Decimal


class MovementGroup(OutputModel):
    count: int
    amount: Decimal
    items: list[MovementItem]


class MovementOut(OutputModel):
    from_: dt.datetime = Field(alias="from", serialization_alias="from")
    to: dt.datetime
    new: MovementGroup
    advanced: MovementGroup
    slipped_back: MovementGroup
    won: MovementGroup
    lost: MovementGroup


class ForecastMonth(OutputModel):
    month: str = Field(description="YYYY-MM")
    categories: dict[str, Decimal] = Field(
        description="Open amounts expected to close in the month, by category (pipeline, "
        "best_case, commit, omitted)."
    )
    closed: Decimal = Field(description="Amount won in the month (actual).")
    weighted: Decimal = Field(description="Σ amount × probability of the open, non-omitted ones.")
    forecast_at_start: Decimal | None = Field(
        description="The weighted forecast for the month as it stood when the month began."
    )


class ForecastOut(OutputModel):
    timezone: str
    months: list[ForecastMonth]
