"""Schemas for auto-tag rules (SPEC H10)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr

from app.schemas.common import InputModel, OutputModel

TagRuleAction = Literal["add", "remove", "sync"]
ConditionOp = Literal["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "is_null", "not_null"]
# JSON values as sent: strict, so "5" is never taken for 5 nor 1 for true.
Scalar = StrictBool | StrictInt | StrictFloat | StrictStr
MAX_LIST_VALUES = 1000

FIELD_DOC = (
    "A customer field (`industry`, `level`, `source`, `province`, `city`, `gender`, `kind`, "
    "`deal_status`), a custom field (`custom.<key>`) or a computed metric (`rfm_segment`, "
    "`pyramid_tier`, `churn_risk`, `lead_score`, `recency_days`, `frequency`, `monetary_cents`)."
)
ACTION_DOC = (
    "`add`: matching customers get the tag; `remove`: matching customers lose it; `sync`: "
    "matching customers get it and the others lose it."
)


class TagRuleCondition(InputModel):
    field: str = Field(min_length=1, max_length=80, description=FIELD_DOC)
    op: ConditionOp = Field(
        description="`eq`, `ne`, `in`, `not_in` for every field; `gt`, `gte`, `lt`, `lte` for "
        "numbers and dates; `is_null`, `not_null` take no value. A comparison never matches a "
        "customer whose value is missing (ask with `is_null`)."
    )
    value: Scalar | list[Scalar] | None = Field(
        default=None,
        description="A value of the field's type; a non-empty list for `in` and `not_in`; "
        "absent for `is_null` and `not_null`. Dates as `YYYY-MM-DD`.",
    )


class TagRuleBody(InputModel):
    """What a rule does, saved or not."""

    tag_id: int
    action: TagRuleAction = Field(description=ACTION_DOC)
    conditions: list[TagRuleCondition] = Field(
        min_length=1, max_length=20, description="All of them must hold."
    )


class TagRuleCreate(TagRuleBody):
    name: str = Field(min_length=1, max_length=100)
    enabled: bool = True


class TagRulePreviewIn(TagRuleBody):
    """An unsaved rule; `name` and `enabled` are accepted (a create body works) and ignored."""

    name: str | None = Field(default=None, max_length=100)
    enabled: bool | None = None


class TagRuleUpdate(InputModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    tag_id: int | None = None
    action: TagRuleAction | None = None
    conditions: list[TagRuleCondition] | None = Field(default=None, min_length=1, max_length=20)
    enabled: bool | None = None


class TagRuleConditionOut(OutputModel):
    field: str
    op: ConditionOp
    value: Scalar | list[Scalar] | None = None


class TagRuleOut(OutputModel):
    id: int
    name: str
    tag_id: int
    action: TagRuleAction
    conditions: list[TagRuleConditionOut]
    enabled: bool
    created_by_id: int | None
    last_run_at: dt.datetime | None = Field(description="When the rule last ran (null: never).")
    last_added: int = Field(description="Customers who got the tag in the last run.")
    last_removed: int = Field(description="Customers who lost the tag in the last run.")
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int


class TagRuleCustomer(OutputModel):
    id: int
    name: str


class TagRulePreviewOut(OutputModel):
    """Who a run would change now, within your data scope."""

    matching: int = Field(description="Customers in your scope that meet every condition.")
    add_count: int = Field(description="Customers who would get the tag.")
    remove_count: int = Field(description="Customers who would lose the tag.")
    add: list[TagRuleCustomer] = Field(description="The first 50 who would get it, by id.")
    remove: list[TagRuleCustomer] = Field(description="The first 50 who would lose it, by id.")


class TagRuleRunOut(OutputModel):
    added: int = Field(description="Customers who got the tag.")
    removed: int = Field(description="Customers who lost the tag.")
    replaced: int = Field(
        description="Other tags of the tag's exclusive group that ended because of an addition."
    )
    ran_at: dt.datetime
