"""H6 retention and churn: cohorts by first-purchase month, repeat purchase, churn risk."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from app.access import CustomerScope
from app.services.analytics.frames import customer_columns, of_customers, scoped

RETENTION_DEFINITION = """\
From every order of the customers in scope (months in the business time zone). A customer's
**cohort** is the month of their first order; the matrix shows the cohorts of the last `months`
months. **retention[k]** = the part of the cohort's customers who ordered in the k-th month after
their first (month 0 is therefore 1.0); months that have not begun yet are null.
**repeat_purchase_rate** = customers with two or more orders / customers with at least one.
**churn_risk** lists customers with at least two orders whose time since their last order exceeds
`churn_factor` × their mean gap between orders (mean gap = (last − first) / (orders − 1)), most
overdue first; `overdue_ratio` = days since the last order / mean gap. Customers whose orders
all fall at one instant have no rhythm to be overdue against and are not listed."""


@dataclass(frozen=True)
class RetentionQuery:
    now: dt.datetime
    tz: str
    months: int = 12
    churn_factor: float = 2.0
    limit: int = 50
    offset: int = 0


def _month_index(column: str, tz: str) -> pl.Expr:
    local = pl.col(column).dt.convert_time_zone(tz)
    return local.dt.year().cast(pl.Int64) * 12 + local.dt.month().cast(pl.Int64) - 1


def churn_table(orders: pl.DataFrame, now: dt.datetime, factor: float) -> pl.DataFrame:
    """(id, orders, last_order_at, mean_gap_days, days_since, overdue_ratio, churn_risk) for
    customers with two or more orders (scoped ``orders``)."""
    day = 86_400_000_000.0  # microseconds
    per = (
        orders.group_by("customer_id")
        .agg(
            orders=pl.len(),
            first=pl.col("ordered_at").min(),
            last_order_at=pl.col("ordered_at").max(),
        )
        .filter(pl.col("orders") >= 2)
    )
    now_lit = pl.lit(now, dtype=pl.Datetime("us", "UTC"))
    per = per.with_columns(
        mean_gap_days=(pl.col("last_order_at") - pl.col("first")).dt.total_microseconds()
        / day
        / (pl.col("orders") - 1),
        days_since=(now_lit - pl.col("last_order_at")).dt.total_microseconds() / day,
    ).filter(pl.col("mean_gap_days") > 0)
    return per.select(
        pl.col("customer_id").alias("id"),
        pl.col("orders").cast(pl.Int64),
        "last_order_at",
        "mean_gap_days",
        "days_since",
        overdue_ratio=pl.col("days_since") / pl.col("mean_gap_days"),
        churn_risk=pl.col("days_since") > factor * pl.col("mean_gap_days"),
    )


def retention(
    frames: Mapping[str, pl.DataFrame], scope: CustomerScope, q: RetentionQuery
) -> dict[str, Any]:
    customers = scoped(frames["customers"], scope)
    orders = of_customers(frames["orders"], customers).filter(pl.col("ordered_at") <= q.now)
    local_now = q.now.astimezone(dt.UTC)
    now_frame = pl.DataFrame({"t": [local_now]}, schema={"t": pl.Datetime("us", "UTC")})
    current = int(now_frame.select(_month_index("t", q.tz)).item())
    first_month = current - q.months + 1
    months = orders.select("customer_id", month=_month_index("ordered_at", q.tz))
    first = months.group_by("customer_id").agg(cohort=pl.col("month").min())
    active = (
        months.unique()
        .join(first, on="customer_id")
        .filter(pl.col("cohort") >= first_month)
        .with_columns(k=pl.col("month") - pl.col("cohort"))
    )
    sizes = dict(
        first.filter(pl.col("cohort") >= first_month)
        .group_by("cohort")
        .agg(size=pl.len())
        .iter_rows()
    )
    counts = {(c, k): n for c, k, n in active.group_by("cohort", "k").agg(n=pl.len()).iter_rows()}
    cohorts = []
    for cohort in range(first_month, current + 1):
        size = sizes.get(cohort, 0)
        if not size:
            continue
        cells: list[float | None] = []
        for k in range(q.months):
            if cohort + k > current:
                cells.append(None)
            else:
                cells.append(counts.get((cohort, k), 0) / size)
        cohorts.append(
            {
                "cohort": f"{cohort // 12:04d}-{cohort % 12 + 1:02d}",
                "size": size,
                "retention": cells,
            }
        )
    per_customer = orders.group_by("customer_id").agg(n=pl.len())
    with_orders = per_customer.height
    repeat = per_customer.filter(pl.col("n") >= 2).height
    churn = churn_table(orders, q.now, q.churn_factor).filter(pl.col("churn_risk"))
    top = churn.sort(["overdue_ratio", "id"], descending=[True, False]).slice(q.offset, q.limit)
    page = top.join(customer_columns(customers, top["id"], "name"), on="id").sort(
        ["overdue_ratio", "id"], descending=[True, False]
    )
    return {
        "cohorts": cohorts,
        "customers_with_orders": with_orders,
        "repeat_customers": repeat,
        "repeat_purchase_rate": repeat / with_orders if with_orders else None,
        "churn_total": churn.height,
        "churn_risk": [
            {**row, "customer_id": row["id"]}
            for row in page.drop("churn_risk").iter_rows(named=True)
        ],
    }


retention.__doc__ = RETENTION_DEFINITION
