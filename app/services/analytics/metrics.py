"""Per-customer computed metrics, the inputs of auto-tag rules (SPEC H10)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from zoneinfo import ZoneInfo

import polars as pl

from app.access import CustomerScope
from app.services.analytics.common import window
from app.services.analytics.frames import of_customers, scoped
from app.services.analytics.leads import lead_probabilities
from app.services.analytics.retention import churn_table
from app.services.analytics.value import rfm_table, tier_table

# The frames customer_metrics reads.
METRIC_FRAMES = ("customers", "orders", "customer_tags", "tags")
METRICS: Mapping[str, str] = {
    "rfm_segment": "RFM segment over the last 365 days (champions … lost; null without orders)",
    "recency_days": "Days since the last order in the last 365 days",
    "frequency": "Orders in the last 365 days",
    "monetary_cents": "Order amounts in the last 365 days",
    "pyramid_tier": "Pyramid tier A–D by spend in the last 365 days, cuts 1/5/20 %",
    "churn_risk": "True when overdue by more than twice the customer's mean gap between orders",
    "lead_score": "Probability that an open lead signs (null for signed customers)",
}


def customer_metrics(
    frames: Mapping[str, pl.DataFrame], scope: CustomerScope, now: dt.datetime, tz: str
) -> pl.DataFrame:
    """One row per customer in scope: id plus every metric in METRICS (null where undefined)."""
    customers = scoped(frames["customers"], scope)
    today = now.astimezone(ZoneInfo(tz)).date()
    year = window(None, None, tz=tz, today=today, default_days=365)
    orders = of_customers(frames["orders"], customers)
    rfm = rfm_table(orders, year).select(
        "id", "recency_days", "frequency", "monetary_cents", pl.col("segment").alias("rfm_segment")
    )
    tiers = tier_table(orders, year, (1.0, 5.0, 20.0)).select("id", pyramid_tier="tier")
    churn = churn_table(orders, now, 2.0).select("id", "churn_risk")
    leads = lead_probabilities(frames, scope, now, tz).select("id", lead_score="probability")
    return (
        customers.select("id")
        .join(rfm, on="id", how="left")
        .join(tiers, on="id", how="left")
        .join(churn, on="id", how="left")
        .join(leads, on="id", how="left")
        .with_columns(pl.col("churn_risk").fill_null(False))
    )
