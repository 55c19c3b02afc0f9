"""H9 product performance and H2 segments."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from app.access import CustomerScope
from app.services.analytics.common import (
    Cohort,
    Dimension,
    Window,
    bucket_values,
    cohort_members,
    revenue_in,
)
from app.services.analytics.frames import of_customers, scoped

PRODUCTS_DEFINITION = """\
Order lines of orders placed in the window by customers in scope, grouped `by` product, product
category or order channel: **sales_cents** = Σ quantity × unit price, **cost_cents** = Σ quantity ×
unit cost, **margin_cents** = sales − cost, **margin_rate** = margin / sales, **quantity**,
**orders** (distinct orders), **customers** (distinct customers) and **repeat_rate** = the part of
those customers who bought it in two or more orders. Highest sales first."""


@dataclass(frozen=True)
class ProductsQuery:
    window: Window
    by: str = "product"


def products(
    frames: Mapping[str, pl.DataFrame], scope: CustomerScope, q: ProductsQuery
) -> dict[str, Any]:
    customers = scoped(frames["customers"], scope)
    orders = of_customers(q.window.orders(frames["orders"]), customers)
    lines = (
        frames["order_lines"]
        .join(orders.select("order_id", "customer_id", "channel"), on="order_id")
        .join(frames["products"], on="product_id", how="left")
    )
    key = {"product": "product_id", "category": "category", "channel": "channel"}[q.by]
    lines = lines.with_columns(
        key=pl.col(key).cast(pl.String),
        sales=pl.col("quantity") * pl.col("unit_price_cents"),
        cost=pl.col("quantity") * pl.col("unit_cost_cents"),
    )
    per_customer = (
        lines.group_by("key", "customer_id")
        .agg(n=pl.col("order_id").n_unique())
        .group_by("key")
        .agg(customers=pl.len(), repeaters=(pl.col("n") >= 2).sum())
    )
    grouped = (
        lines.group_by("key")
        .agg(
            sales_cents=pl.col("sales").sum(),
            cost_cents=pl.col("cost").sum(),
            quantity=pl.col("quantity").sum(),
            orders=pl.col("order_id").n_unique(),
            label=pl.col("product").first() if q.by == "product" else pl.col("key").first(),
        )
        .join(per_customer, on="key", how="left")
        .sort(["sales_cents", "key"], descending=[True, False], nulls_last=True)
    )
    rows = []
    for row in grouped.iter_rows(named=True):
        sales = int(row["sales_cents"])
        margin = sales - int(row["cost_cents"])
        rows.append(
            {
                "key": row["key"],
                "label": row["label"] or "—",
                "sales_cents": sales,
                "cost_cents": int(row["cost_cents"]),
                "margin_cents": margin,
                "margin_rate": margin / sales if sales else None,
                "quantity": int(row["quantity"]),
                "orders": row["orders"],
                "customers": row["customers"],
                "repeat_rate": row["repeaters"] / row["customers"] if row["customers"] else None,
            }
        )
    return {
        "window": {"date_from": q.window.date_from, "date_to": q.window.date_to},
        "by": q.by,
        "rows": rows,
    }


products.__doc__ = PRODUCTS_DEFINITION

SEGMENTS_DEFINITION = """\
The cohort's customers (default `all`: every customer in scope) grouped by every combination of
the `dimensions`' buckets (a multi-valued tag group or custom field counts a customer in each of
its values). Per group: **count**, **share** of the cohort, **revenue_cents** (orders in the
window), **conversion_rate** (signed by the end of the window) and statistics of the `measure`
over the group's customers that have a value: mean, median, mode (the most frequent value, the
smallest among ties), min, max and the 10/25/75/90 % quantiles (linear interpolation). Measures:
`revenue` and `margin` (cents, orders in the window; 0 without orders), `orders` (count in the
window), `age` (years at the end of the window, from the birth date) or `custom:<key>` (a number
custom field). Largest groups first, at most 500."""

MEASURES = ("revenue", "orders", "margin", "age")
STATS = ("n", "mean", "median", "mode", "min", "max", "p10", "p25", "p75", "p90")


@dataclass(frozen=True)
class SegmentsQuery:
    dimensions: Sequence[Dimension]
    measure: str
    cohort: Cohort
    window: Window
    age_cuts: tuple[int, ...] = ()


def segments(
    frames: Mapping[str, pl.DataFrame], scope: CustomerScope, q: SegmentsQuery
) -> dict[str, Any]:
    customers = scoped(frames["customers"], scope)
    members = cohort_members(
        customers, q.cohort, q.window, orders=frames["orders"], tags=frames.get("customer_tags")
    ).with_columns(at=pl.lit(q.window.end, dtype=pl.Datetime("us", "UTC")))
    revenue = revenue_in(of_customers(frames["orders"], members), q.window)
    base = members.join(revenue, on="id", how="left").with_columns(
        converted=pl.col("signed_at").is_not_null() & (pl.col("signed_at") < pl.col("at")),
        revenue_cents=pl.col("revenue_cents").fill_null(0),
        orders=pl.col("orders").fill_null(0),
        margin=(pl.col("revenue_cents") - pl.col("cost_cents")).fill_null(0),
    )
    if q.measure == "age":
        years = (
            pl.col("at").dt.convert_time_zone(q.window.tz).dt.date() - pl.col("birth_date")
        ).dt.total_days() / 365.25
        base = base.with_columns(measure=years.floor())
    elif q.measure.startswith("custom:"):
        values = frames[q.measure].select(
            pl.col("customer_id").alias("id"),
            measure=pl.col("value").cast(pl.Float64, strict=False),
        )
        base = base.join(values, on="id", how="left")
    else:
        column = {"revenue": "revenue_cents", "orders": "orders", "margin": "margin"}[q.measure]
        base = base.with_columns(measure=pl.col(column).cast(pl.Float64))
    grouped = base.select("id", "converted", "revenue_cents", "measure")
    keys = []
    for i, dim in enumerate(q.dimensions):
        name = f"d{i}"
        values = bucket_values(
            members, dim, frames, tz=q.window.tz, age_cuts=q.age_cuts or (18,)
        ).select("id", pl.col("value").alias(name))
        grouped = grouped.join(values, on="id", how="left")
        keys.append(name)
    size = members.height
    measure = pl.col("measure").drop_nulls()
    table = (
        grouped.group_by(keys)
        .agg(
            count=pl.len(),
            revenue_cents=pl.col("revenue_cents").sum(),
            converted=pl.col("converted").sum(),
            n=measure.len(),
            mean=measure.mean(),
            median=measure.median(),
            mode=measure.mode().sort().first(),
            min=measure.min(),
            max=measure.max(),
            p10=measure.quantile(0.10, "linear"),
            p25=measure.quantile(0.25, "linear"),
            p75=measure.quantile(0.75, "linear"),
            p90=measure.quantile(0.90, "linear"),
        )
        .sort(["count", *keys], descending=[True, *([False] * len(keys))], nulls_last=True)
        .head(500)
    )
    rows = []
    for row in table.iter_rows(named=True):
        rows.append(
            {
                "values": {d.key: row[k] for d, k in zip(q.dimensions, keys, strict=True)},
                "count": row["count"],
                "share": row["count"] / size if size else 0.0,
                "revenue_cents": int(row["revenue_cents"]),
                "conversion_rate": row["converted"] / row["count"] if row["count"] else None,
                "stats": {
                    s: row[s]
                    for s in (
                        "n",
                        "mean",
                        "median",
                        "mode",
                        "min",
                        "max",
                        "p10",
                        "p25",
                        "p75",
                        "p90",
                    )
                },
            }
        )
    return {
        "dimensions": [d.key for d in q.dimensions],
        "measure": q.measure,
        "window": {"date_from": q.window.date_from, "date_to": q.window.date_to},
        "cohort": q.cohort.raw,
        "total": size,
        "rows": rows,
    }


segments.__doc__ = SEGMENTS_DEFINITION
