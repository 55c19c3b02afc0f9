"""Customer analytics (SPEC H1–H9): response shapes; definitions are in the endpoint docs."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from app.schemas.common import OutputModel

Flag = Literal["acquire_more", "conversion_problem"]
BucketValue = str | None


class WindowOut(OutputModel):
    date_from: dt.date
    date_to: dt.date


class DimensionOut(OutputModel):
    key: str = Field(description="Pass as `dimension`: e.g. industry, age_band, tag_group:3")
    label: str
    kind: Literal["field", "age_band", "tag_group", "custom"]


class CohortOut(OutputModel):
    key: Literal["a", "b"]
    spec: str
    size: int
    revenue_cents: int


class BucketStats(OutputModel):
    count: int
    share: float
    conversion_rate: float | None
    revenue_cents: int


class PersonaBucket(OutputModel):
    value: BucketValue = Field(description="The bucket; null for customers without a value.")
    a: BucketStats
    b: BucketStats | None = None
    share_difference: float | None = None
    lift: float | None = None
    z: float | None = None
    p_value: float | None = None
    flag: Flag | None = None


class TrendPoint(OutputModel):
    period: dt.date = Field(description="First day of the week (Monday) or month.")
    complete: bool = Field(description="False when the window cuts the period or it is not over.")
    value: BucketValue
    a_count: int
    a_share: float | None
    b_count: int | None = None
    b_share: float | None = None


class CloudTag(OutputModel):
    tag_id: int
    tag: str
    tag_group: str
    count: int
    weight: float


class TagCloud(OutputModel):
    a: list[CloudTag]
    b: list[CloudTag] | None = None


class PersonaOut(OutputModel):
    dimension: str
    dimension_label: str
    window: WindowOut
    alpha: float
    cohorts: list[CohortOut]
    buckets: list[PersonaBucket]
    trend: list[TrendPoint] | None
    tag_cloud: TagCloud | None


class MeasureStats(OutputModel):
    n: int = Field(description="Customers with a value of the measure.")
    mean: float | None
    median: float | None
    mode: float | None
    min: float | None
    max: float | None
    p10: float | None
    p25: float | None
    p75: float | None
    p90: float | None


class SegmentRow(OutputModel):
    values: dict[str, BucketValue]
    count: int
    share: float
    revenue_cents: int
    conversion_rate: float | None
    stats: MeasureStats


class SegmentsOut(OutputModel):
    dimensions: list[str]
    measure: str
    window: WindowOut
    cohort: str
    total: int
    rows: list[SegmentRow]


RfmSegment = Literal[
    "champions",
    "loyal",
    "potential_loyalists",
    "new",
    "promising",
    "need_attention",
    "about_to_sleep",
    "at_risk",
    "cant_lose",
    "hibernating",
    "lost",
]


class RfmSegmentOut(OutputModel):
    segment: RfmSegment
    count: int
    share: float
    revenue_cents: int


class RfmCell(OutputModel):
    r: int
    f: int
    count: int
    revenue_cents: int
    segment: RfmSegment


class RfmCustomer(OutputModel):
    customer_id: int
    name: str
    recency_days: int
    frequency: int
    monetary_cents: int
    r: int
    f: int
    m: int
    segment: RfmSegment


class RfmOut(OutputModel):
    window: WindowOut
    customers_with_orders: int
    segments: list[RfmSegmentOut]
    grid: list[RfmCell]
    total: int = Field(description="Customers matching the segment filter.")
    items: list[RfmCustomer]


class QuadrantOut(OutputModel):
    quadrant: Literal["star", "volume", "niche", "tail"]
    count: int
    revenue_cents: int
    margin_cents: int


class MatrixPoint(OutputModel):
    customer_id: int
    name: str
    sales_cents: int
    margin_rate: float
    quadrant: Literal["star", "volume", "niche", "tail"]


class ValueMatrixOut(OutputModel):
    window: WindowOut
    sales_threshold_cents: float
    margin_threshold: float
    customers: int
    quadrants: list[QuadrantOut]
    points: list[MatrixPoint] = Field(description="The customers with the highest sales (≤ limit).")


class PyramidTier(OutputModel):
    tier: Literal["A", "B", "C", "D"]
    from_percent: float
    to_percent: float
    count: int
    revenue_cents: int
    revenue_share: float
    min_spend_cents: int | None
    max_spend_cents: int | None


class PyramidOut(OutputModel):
    window: WindowOut
    cuts: list[float]
    customers_with_spend: int
    customers_without_spend: int
    tiers: list[PyramidTier]


class RetentionCohort(OutputModel):
    cohort: str = Field(description="First-purchase month, YYYY-MM.")
    size: int
    retention: list[float | None] = Field(
        description="Share of the cohort buying in month 0, 1, 2 …; null for months not over yet."
    )


class ChurnRisk(OutputModel):
    customer_id: int
    name: str
    orders: int
    last_order_at: dt.datetime
    mean_gap_days: float
    days_since: float
    overdue_ratio: float


class RetentionOut(OutputModel):
    cohorts: list[RetentionCohort]
    customers_with_orders: int
    repeat_customers: int
    repeat_purchase_rate: float | None
    churn_total: int
    churn_risk: list[ChurnRisk]


class ProductRef(OutputModel):
    product_id: int
    name: str


class Itemset(OutputModel):
    items: list[ProductRef]
    count: int
    support: float


class AssociationRule(OutputModel):
    antecedent: list[ProductRef]
    consequent: list[ProductRef]
    count: int
    support: float
    confidence: float
    lift: float


class BasketOut(OutputModel):
    window: WindowOut
    transactions: int
    min_support: float
    min_confidence: float
    itemsets: list[Itemset]
    rules: list[AssociationRule]


class Recommendation(OutputModel):
    product: ProductRef
    because: list[ProductRef] = Field(description="Products the customer bought that lead here.")
    confidence: float
    lift: float
    support: float


class Contribution(OutputModel):
    attribute: str
    value: str
    weight: float = Field(description="log(P(value | signed) / P(value | not signed)).")


class LeadModel(OutputModel):
    method: str
    trained_on: int
    positives: int
    holdout_size: int
    holdout_accuracy: float | None
    holdout_auc: float | None
    base_rate: float | None
    attributes: list[str]


class LeadScore(OutputModel):
    customer_id: int
    name: str
    owner_id: int | None
    created_at: dt.datetime
    probability: float
    top_attributes: list[Contribution]


class LeadScoresOut(OutputModel):
    model: LeadModel
    total: int
    items: list[LeadScore]


class ProductPerformance(OutputModel):
    key: str | None
    label: str
    sales_cents: int
    cost_cents: int
    margin_cents: int
    margin_rate: float | None
    quantity: int
    orders: int
    customers: int
    repeat_rate: float | None


class ProductsOut(OutputModel):
    window: WindowOut
    by: Literal["product", "category", "channel"]
    rows: list[ProductPerformance]
