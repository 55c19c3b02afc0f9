"""Customer value from the orders ledger: RFM (H3), value matrix (H4), pyramid (H5)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_args

import polars as pl

from app.access import CustomerScope
from app.errors import ValidationFailed, field_error
from app.schemas.analytics import RfmSegment
from app.services.analytics.common import Window
from app.services.analytics.frames import customer_columns, of_customers, scoped

RFM_DEFINITION = """\
Over the orders placed in the window by customers in scope, per customer: **recency_days** =
whole days from the last order to the end of the window, **frequency** = orders, **monetary_cents**
= their amounts. Each gets a quintile **score** 1–5 (5 best: most recent, most frequent, highest
spend): with the customers ranked from worst to best, `score = 1 + floor(5 × (rank − 1) / n)` where
tied values share the lowest rank of their tie (so equal values always score alike). The
**segment** comes from the R and F scores:

| R \\ F | 1 | 2 | 3 | 4 | 5 |
|---|---|---|---|---|---|
| 5 | new | potential_loyalists | potential_loyalists | champions | champions |
| 4 | promising | potential_loyalists | potential_loyalists | loyal | loyal |
| 3 | about_to_sleep | about_to_sleep | need_attention | loyal | loyal |
| 2 | hibernating | hibernating | at_risk | at_risk | cant_lose |
| 1 | lost | hibernating | at_risk | at_risk | cant_lose |

`items` lists the customers (filtered by `segment`), highest monetary first."""

SEGMENTS: tuple[str, ...] = get_args(RfmSegment)


def segment_of(r: int, f: int) -> str:
    """The named RFM segment of an (R, F) score pair (the grid in RFM_DEFINITION)."""
    if r <= 2:
        if f >= 5:
            return "cant_lose"
        if f >= 3:
            return "at_risk"
        return "lost" if r == 1 and f == 1 else "hibernating"
    if r == 3:
        return "need_attention" if f == 3 else ("loyal" if f >= 4 else "about_to_sleep")
    if f >= 4:
        return "champions" if r == 5 else "loyal"
    if f >= 2:
        return "potential_loyalists"
    return "new" if r == 5 else "promising"


_SEGMENT_TABLE = pl.DataFrame(
    {
        "r": [r for r in range(1, 6) for _ in range(1, 6)],
        "f": [f for _ in range(1, 6) for f in range(1, 6)],
        "segment": [segment_of(r, f) for r in range(1, 6) for f in range(1, 6)],
    },
    schema={"r": pl.Int64, "f": pl.Int64, "segment": pl.String},
)


def quintile(column: str, *, descending: bool = False) -> pl.Expr:
    """Score 1–5: ``1 + floor(5 × (rank − 1) / n)``, ranks from worst to best, ties at their
    lowest rank (``descending``: smaller values are better)."""
    ranked = pl.col(column).rank("min", descending=descending).cast(pl.Int64)
    return (1 + (5 * (ranked - 1)) // pl.len()).cast(pl.Int64)


def rfm_table(orders: pl.DataFrame, win: Window) -> pl.DataFrame:
    """(id, recency_days, frequency, monetary_cents, r, f, m, segment) for customers who ordered
    in the window (``orders`` already limited to the caller's scope)."""
    in_window = win.orders(orders)
    per = in_window.group_by("customer_id").agg(
        last=pl.col("ordered_at").max(),
        frequency=pl.len(),
        monetary_cents=pl.col("amount_cents").sum(),
    )
    end = pl.lit(win.end, dtype=pl.Datetime("us", "UTC"))
    per = per.with_columns(recency_days=((end - pl.col("last")).dt.total_seconds() // 86400))
    if per.height == 0:
        return per.with_columns(
            r=pl.lit(0), f=pl.lit(0), m=pl.lit(0), segment=pl.lit(None, dtype=pl.String)
        ).rename({"customer_id": "id"})
    scored = per.with_columns(
        r=quintile("recency_days", descending=True),
        f=quintile("frequency"),
        m=quintile("monetary_cents"),
    )
    return (
        scored.join(_SEGMENT_TABLE, on=["r", "f"], how="left")
        .rename({"customer_id": "id"})
        .select(
            "id",
            pl.col("recency_days").cast(pl.Int64),
            pl.col("frequency").cast(pl.Int64),
            pl.col("monetary_cents").cast(pl.Int64),
            "r",
            "f",
            "m",
            "segment",
            "last",
        )
    )


@dataclass(frozen=True)
class RfmQuery:
    window: Window
    segment: str | None = None
    limit: int = 50
    offset: int = 0


def rfm(frames: Mapping[str, pl.DataFrame], scope: CustomerScope, q: RfmQuery) -> dict[str, Any]:
    customers = scoped(frames["customers"], scope)
    table = rfm_table(of_customers(q.window.orders(frames["orders"]), customers), q.window)
    n = table.height
    by_segment = {
        row["segment"]: row
        for row in table.group_by("segment")
        .agg(count=pl.len(), revenue_cents=pl.col("monetary_cents").sum())
        .iter_rows(named=True)
    }
    segments = [
        {
            "segment": s,
            "count": by_segment.get(s, {}).get("count", 0),
            "share": by_segment.get(s, {}).get("count", 0) / n if n else 0.0,
            "revenue_cents": int(by_segment.get(s, {}).get("revenue_cents", 0) or 0),
        }
        for s in SEGMENTS
    ]
    cells = {
        (row["r"], row["f"]): row
        for row in table.group_by("r", "f")
        .agg(count=pl.len(), revenue_cents=pl.col("monetary_cents").sum())
        .iter_rows(named=True)
    }
    grid = [
        {
            "r": r,
            "f": f,
            "count": cells.get((r, f), {}).get("count", 0),
            "revenue_cents": int(cells.get((r, f), {}).get("revenue_cents", 0) or 0),
            "segment": segment_of(r, f),
        }
        for r in range(5, 0, -1)
        for f in range(1, 6)
    ]
    listed = table if q.segment is None else table.filter(pl.col("segment") == q.segment)
    top = listed.sort(["monetary_cents", "id"], descending=[True, False]).slice(q.offset, q.limit)
    page = top.join(customer_columns(customers, top["id"], "name"), on="id", how="left").sort(
        ["monetary_cents", "id"], descending=[True, False]
    )
    return {
        "window": {"date_from": q.window.date_from, "date_to": q.window.date_to},
        "customers_with_orders": n,
        "segments": segments,
        "grid": grid,
        "total": listed.height,
        "items": [
            {**row, "customer_id": row["id"]} for row in page.drop("last").iter_rows(named=True)
        ],
    }


rfm.__doc__ = RFM_DEFINITION

# --- value matrix ------------------------------------------------------------------------------

VALUE_MATRIX_DEFINITION = """\
Customers in scope with sales in the window, placed by **sales_cents** (their order amounts) and
**margin_rate** = (sales − cost) / sales. Quadrants against the thresholds (default: the medians of
the two over these customers): `star` = sales ≥ threshold and margin rate ≥ threshold, `volume` =
high sales, lower margin, `niche` = lower sales, high margin, `tail` = both lower. `points` are the
customers with the highest sales (at most `limit`)."""


def _median(series: pl.Series) -> float:
    value = series.median()
    return float(value) if isinstance(value, int | float) else 0.0


@dataclass(frozen=True)
class ValueMatrixQuery:
    window: Window
    sales_threshold_cents: float | None = None
    margin_threshold: float | None = None
    limit: int = 500


def value_matrix(
    frames: Mapping[str, pl.DataFrame], scope: CustomerScope, q: ValueMatrixQuery
) -> dict[str, Any]:
    customers = scoped(frames["customers"], scope)
    orders = of_customers(q.window.orders(frames["orders"]), customers)
    per = (
        orders.group_by("customer_id")
        .agg(sales_cents=pl.col("amount_cents").sum(), cost_cents=pl.col("cost_cents").sum())
        .filter(pl.col("sales_cents") > 0)
        .with_columns(
            margin_cents=pl.col("sales_cents") - pl.col("cost_cents"),
            margin_rate=(pl.col("sales_cents") - pl.col("cost_cents")) / pl.col("sales_cents"),
        )
    )
    sales_t = q.sales_threshold_cents
    if sales_t is None:
        sales_t = _median(per["sales_cents"])
    margin_t = q.margin_threshold
    if margin_t is None:
        margin_t = _median(per["margin_rate"])
    high_sales = pl.col("sales_cents") >= sales_t
    high_margin = pl.col("margin_rate") >= margin_t
    per = per.with_columns(
        quadrant=pl.when(high_sales & high_margin)
        .then(pl.lit("star"))
        .when(high_sales)
        .then(pl.lit("volume"))
        .when(high_margin)
        .then(pl.lit("niche"))
        .otherwise(pl.lit("tail"))
    )
    counted = {
        row["quadrant"]: row
        for row in per.group_by("quadrant")
        .agg(
            count=pl.len(),
            revenue_cents=pl.col("sales_cents").sum(),
            margin_cents=pl.col("margin_cents").sum(),
        )
        .iter_rows(named=True)
    }
    points = (
        per.sort(["sales_cents", "customer_id"], descending=[True, False])
        .head(q.limit)
        .join(customers.select(pl.col("id").alias("customer_id"), "name"), on="customer_id")
        .sort(["sales_cents", "customer_id"], descending=[True, False])
    )
    return {
        "window": {"date_from": q.window.date_from, "date_to": q.window.date_to},
        "sales_threshold_cents": sales_t,
        "margin_threshold": margin_t,
        "customers": per.height,
        "quadrants": [
            {
                "quadrant": name,
                "count": counted.get(name, {}).get("count", 0),
                "revenue_cents": int(counted.get(name, {}).get("revenue_cents", 0) or 0),
                "margin_cents": int(counted.get(name, {}).get("margin_cents", 0) or 0),
            }
            for name in ("star", "volume", "niche", "tail")
        ],
        "points": points.select(
            "customer_id", "name", "sales_cents", "margin_rate", "quadrant"
        ).to_dicts(),
    }


value_matrix.__doc__ = VALUE_MATRIX_DEFINITION

# --- pyramid -----------------------------------------------------------------------------------

PYRAMID_DEFINITION = """\
Customers in scope with spend in the window (their order amounts), ranked by spend, highest first
(ties by customer id). With n such customers and cut points c1 < c2 < c3 percent (default 1, 5,
20): tier **A** = the first ceil(n × c1 / 100) customers, **B** up to ceil(n × c2 / 100), **C** up
to ceil(n × c3 / 100), **D** the rest. Per tier: count, revenue, revenue share and the spend range.
`customers_without_spend` counts customers in scope who bought nothing in the window."""

TIERS = ("A", "B", "C", "D")


def parse_cuts(raw: str | None) -> tuple[float, float, float]:
    if not raw:
        return (1.0, 5.0, 20.0)
    try:
        cuts = tuple(float(v) for v in raw.split(","))
    except ValueError:
        cuts = ()
    if (
        len(cuts) != 3
        or not all(0 < c < 100 for c in cuts)
        or not cuts[0] < cuts[1] < cuts[2]
        or any(math.isnan(c) for c in cuts)
    ):
        raise ValidationFailed(
            "cuts must be three increasing percentages between 0 and 100, e.g. 1,5,20",
            errors=[field_error("cuts", "invalid cut points", where="query")],
        )
    return (cuts[0], cuts[1], cuts[2])


def tier_table(orders: pl.DataFrame, win: Window, cuts: Sequence[float]) -> pl.DataFrame:
    """(id, spend_cents, tier) for customers with spend in the window (scoped ``orders``)."""
    per = (
        win.orders(orders)
        .group_by("customer_id")
        .agg(spend_cents=pl.col("amount_cents").sum())
        .filter(pl.col("spend_cents") > 0)
        .sort(["spend_cents", "customer_id"], descending=[True, False])
        .with_row_index("position", offset=1)
    )
    n = per.height
    bounds = [math.ceil(n * c / 100) for c in cuts]
    position = pl.col("position")
    return per.select(
        pl.col("customer_id").alias("id"),
        "spend_cents",
        pl.when(position <= bounds[0])
        .then(pl.lit("A"))
        .when(position <= bounds[1])
        .then(pl.lit("B"))
        .when(position <= bounds[2])
        .then(pl.lit("C"))
        .otherwise(pl.lit("D"))
        .alias("tier"),
    )


@dataclass(frozen=True)
class PyramidQuery:
    window: Window
    cuts: tuple[float, float, float] = (1.0, 5.0, 20.0)


def pyramid(
    frames: Mapping[str, pl.DataFrame], scope: CustomerScope, q: PyramidQuery
) -> dict[str, Any]:
    customers = scoped(frames["customers"], scope)
    table = tier_table(of_customers(q.window.orders(frames["orders"]), customers), q.window, q.cuts)
    total = int(table["spend_cents"].sum() or 0)
    stats = {
        row["tier"]: row
        for row in table.group_by("tier")
        .agg(
            count=pl.len(),
            revenue_cents=pl.col("spend_cents").sum(),
            low=pl.col("spend_cents").min(),
            high=pl.col("spend_cents").max(),
        )
        .iter_rows(named=True)
    }
    edges = (0.0, *q.cuts, 100.0)
    tiers = []
    for i, tier in enumerate(TIERS):
        row = stats.get(tier, {})
        revenue = int(row.get("revenue_cents", 0) or 0)
        tiers.append(
            {
                "tier": tier,
                "from_percent": edges[i],
                "to_percent": edges[i + 1],
                "count": row.get("count", 0),
                "revenue_cents": revenue,
                "revenue_share": revenue / total if total else 0.0,
                "min_spend_cents": row.get("low"),
                "max_spend_cents": row.get("high"),
            }
        )
    return {
        "window": {"date_from": q.window.date_from, "date_to": q.window.date_to},
        "cuts": list(q.cuts),
        "customers_with_spend": table.height,
        "customers_without_spend": customers.height - table.height,
        "tiers": tiers,
    }


pyramid.__doc__ = PYRAMID_DEFINITION
