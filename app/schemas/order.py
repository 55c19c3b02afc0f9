"""The orders ledger (SPEC H, "orders"): what customers bought, single and in bulk."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

from pydantic import Field, field_validator

from app.schemas.common import InputModel, OutputModel
from app.schemas.opportunity import Money

MAX_BULK_ORDERS = 10_000


class OrderLineIn(InputModel):
    product_id: int
    quantity: int = Field(ge=1, le=1_000_000)
    unit_price: Money | None = Field(default=None, description="Defaults to the product's price.")
    unit_cost: Money | None = Field(default=None, description="Defaults to the product's cost.")


class OrderIn(InputModel):
    customer_id: int
    external_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="The order's id in the system it comes from (ERP, POS, shop): posting the "
        "same external id again returns the recorded order and changes nothing.",
    )
    ordered_at: dt.datetime
    channel: str | None = Field(default=None, max_length=32, description="e.g. 门店, 电商, 直销")
    lines: list[OrderLineIn] = Field(min_length=1, max_length=200)

    @field_validator("ordered_at")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2026-11-23T09:00:00+08:00)")
        return value


class OrderBulkIn(InputModel):
    orders: list[OrderIn] = Field(min_length=1, max_length=MAX_BULK_ORDERS)


class OrderLineOut(OutputModel):
    product_id: int
    quantity: int
    unit_price: Decimal
    unit_cost: Decimal


class OrderOut(OutputModel):
    id: int
    customer_id: int
    contract_id: int | None
    external_id: str | None
    source: str
    channel: str | None
    ordered_at: dt.datetime
    amount: Decimal = Field(description="Sum of quantity × unit price over the lines.")
    cost: Decimal = Field(description="Sum of quantity × unit cost over the lines.")
    lines: list[OrderLineOut]
    created_at: dt.datetime


class OrderBulkItem(OutputModel):
    index: int = Field(description="Position in the request's `orders`.")
    id: int
    external_id: str | None
    status: Literal["created", "existing"]


class OrderBulkOut(OutputModel):
    created: int
    existing: int
    items: list[OrderBulkItem]
