"""H1 persona: how two cohorts (default: the window's leads and its signed customers) spread over a
dimension, which differences are real, and how the shares moved over time."""

from __future__ import annotations

import datetime as dt
import functools
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from app.access import CustomerScope
from app.models.base import utcnow
from app.services.analytics.common import (
    Cohort,
    Dimension,
    Window,
    bucket_values,
    cohort_members,
    in_force,
    revenue_in,
)
from app.services.analytics.frames import scoped

PERSONA_DEFINITION = """\
For each bucket of the dimension and each cohort: **count** (customers of the cohort in the
bucket), **share** = count / cohort size (a customer with several values of a tag group counts in
each, so shares can sum above 1), **conversion_rate** = the part of those customers who had
signed by the end of the window, **revenue_cents** = their orders placed in the window. Tag groups
use the tag history: the tags each customer carried at the end of the window.

With two cohorts: **share_difference** = share(b) − share(a); **lift** = share(b) / share(a);
a two-proportion **z-test** (pooled, two-sided) gives **z** and **p_value**. The **flag** is
`acquire_more` when b's share is significantly above a's (p < alpha, default 0.05: with the
default cohorts, signed customers over-represent the bucket — find more leads like them) and
`conversion_problem` when a's share is significantly above b's (many leads, few signings). A bucket
is flagged only when the pooled expected count is at least 5 in both cohorts (the test's validity
rule). The cohorts may overlap (a lead signed in the same window is in both); the test treats them
as independent samples, which is conservative for the usual overlap.

`granularity=week|month` adds **trend**: per period (weeks start on Monday, in the business time
zone), the cohorts re-formed with the period as their window and the shares per bucket at the
period's end; `complete` is false for a period the window cuts or that has not ended yet.
**tag_cloud**: per cohort, every tag its customers carried at the end of the window, weighted by
count / the largest count."""


# Customer and tag id packed into one integer: customer_id * _PAIR + tag_id.
_PAIR = 1 << 32


@dataclass(frozen=True)
class PersonaQuery:
    dimension: Dimension
    cohort_a: Cohort
    cohort_b: Cohort | None
    window: Window
    granularity: str | None = None
    alpha: float = 0.05
    age_cuts: tuple[int, ...] = ()
    cloud_size: int = 50


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> tuple[float | None, float | None]:
    """Pooled two-proportion z-test of x2/n2 vs x1/n1: (z, two-sided p); None when undefined."""
    if n1 == 0 or n2 == 0:
        return None, None
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return None, None
    z = (x2 / n2 - x1 / n1) / math.sqrt(variance)
    return z, math.erfc(abs(z) / math.sqrt(2))


def _members(
    customers: pl.DataFrame,
    cohort: Cohort,
    query: PersonaQuery,
    frames: Mapping[str, pl.DataFrame],
) -> pl.Series:
    """The ids of the cohort's customers."""
    found = cohort_members(
        customers,
        cohort,
        query.window,
        orders=frames.get("orders"),
        tags=frames.get("customer_tags"),
        columns=(),
    )
    return found["id"]


@dataclass(frozen=True)
class _Dense:
    """Per-customer values indexed by customer id (gathers instead of hash joins): cohort
    membership, converted by the window's end, revenue in the window."""

    member: dict[str, pl.Series]
    anyone: pl.Series
    converted: pl.Series
    revenue: pl.Series

    @staticmethod
    def build(
        customers: pl.DataFrame,
        members: Mapping[str, pl.Series],
        revenue: pl.DataFrame,
        size: int,
        end: Any,
    ) -> _Dense:
        def flags(ids: pl.Series) -> pl.Series:
            return pl.zeros(size, dtype=pl.Boolean, eager=True).scatter(ids, True)

        member = {k: flags(ids) for k, ids in members.items()}
        anyone = functools.reduce(operator.or_, member.values())
        converted = customers.select(pl.col("id").filter(pl.col("signed_at") < end)).to_series()
        cents = pl.zeros(size, dtype=pl.Int64, eager=True).scatter(
            revenue["id"], revenue["revenue_cents"]
        )
        return _Dense(member=member, anyone=anyone, converted=flags(converted), revenue=cents)

    def stats(self, values: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
        """Per value of ``values`` (id, value): for each cohort key, count, converted, revenue."""
        ids = values["id"]
        gathered = values.with_columns(
            _conv=self.converted.gather(ids), _rev=self.revenue.gather(ids)
        ).with_columns(**{f"_in_{k}": self.member[k].gather(ids) for k in keys})
        aggregates = []
        for k in keys:
            inside = pl.col(f"_in_{k}")
            aggregates += [
                inside.sum().alias(f"{k}_count"),
                (inside & pl.col("_conv")).sum().alias(f"{k}_converted"),
                pl.when(inside).then(pl.col("_rev")).otherwise(0).sum().alias(f"{k}_revenue"),
            ]
        return gathered.group_by("value").agg(aggregates)


def _cohort_values(
    customers: pl.DataFrame,
    query: PersonaQuery,
    frames: Mapping[str, pl.DataFrame],
    dense: _Dense,
    spans: pl.DataFrame | None,
) -> pl.DataFrame:
    """(id, value) for every member of any cohort, all seen at the window's end. A tag group
    reads the spans in force then (``_member_spans``) and keeps tag ids as values: they are
    named once counted."""
    dimension = query.dimension
    if dimension.kind != "tag_group":
        union = (
            customers.select(list(dict.fromkeys(["id", *dimension.columns])))
            .filter(dense.anyone.gather(customers["id"]))
            .with_columns(at=pl.lit(query.window.end, dtype=pl.Datetime("us", "UTC")))
        )
        return bucket_values(
            union, dimension, frames, tz=query.window.tz, age_cuts=query.age_cuts or (18,)
        ).select("id", "value")
    assert spans is not None
    group = frames["tags"].filter(pl.col("group_id") == dimension.group_id)["tag_id"]
    # A merge can leave two spans of one tag in force for the kept customer: count it once
    # (unique over one integer key is several times faster than over two columns).
    pair = pl.col("customer_id") * _PAIR + pl.col("tag_id")
    carried = (
        spans.lazy()
        .filter(pl.col("tag_id").is_in(group.implode()))
        .select(pair.unique().alias("pair"))
        .select(id=pl.col("pair") // _PAIR, value=pl.col("pair") % _PAIR)
        .collect()
    )
    tagged = pl.zeros(dense.anyone.len(), dtype=pl.Boolean, eager=True).scatter(carried["id"], True)
    untagged = (dense.anyone & ~tagged).arg_true().cast(pl.Int64)
    none = pl.DataFrame(
        {"id": untagged, "value": pl.repeat(None, untagged.len(), dtype=pl.Int64, eager=True)}
    )
    return pl.concat([carried, none])


def _member_spans(
    frames: Mapping[str, pl.DataFrame], query: PersonaQuery, dense: _Dense
) -> pl.DataFrame:
    """(customer_id, tag_id) in force at the window's end for customers in any cohort, with a
    membership column per cohort: one pass over the history serves the buckets and the cloud."""
    ids = pl.col("customer_id")
    return (
        frames["customer_tags"]
        .lazy()  # one pass, and only the four columns read are filtered
        .filter(in_force(query.window.end))
        .select("customer_id", "tag_id")
        .with_columns(pl.lit(m).gather(ids).alias(f"_in_{k}") for k, m in dense.member.items())
        .filter(pl.any_horizontal(f"_in_{k}" for k in dense.member))
        .collect()
    )


def _flag(
    a: Mapping[str, Any] | None, b: Mapping[str, Any] | None, n_a: int, n_b: int, alpha: float
) -> dict[str, Any]:
    x1 = a["count"] if a else 0
    x2 = b["count"] if b else 0
    z, p = two_proportion_z(x1, n_a, x2, n_b)
    share_a = x1 / n_a if n_a else 0.0
    share_b = x2 / n_b if n_b else 0.0
    pooled = (x1 + x2) / (n_a + n_b) if n_a + n_b else 0.0
    valid = min(pooled * n_a, pooled * n_b, (1 - pooled) * n_a, (1 - pooled) * n_b) >= 5
    flag = None
    if p is not None and p < alpha and valid:
        flag = "acquire_more" if share_b > share_a else "conversion_problem"
    return {
        "share_difference": share_b - share_a,
        "lift": share_b / share_a if share_a else None,
        "z": z,
        "p_value": p,
        "flag": flag,
    }


def _empty() -> dict[str, Any]:
    return {"count": 0, "share": 0.0, "conversion_rate": None, "revenue_cents": 0}


def persona(
    frames: Mapping[str, pl.DataFrame], scope: CustomerScope, query: PersonaQuery
) -> dict[str, Any]:
    """Persona comparison (H1)."""
    customers = scoped(frames["customers"], scope)
    revenue = revenue_in(frames["orders"], query.window)
    cohorts: list[tuple[str, Cohort]] = [("a", query.cohort_a)]
    if query.cohort_b is not None:
        cohorts.append(("b", query.cohort_b))
    members = {key: _members(customers, cohort, query, frames) for key, cohort in cohorts}
    size = _id_space(frames)
    dense = _Dense.build(customers, members, revenue, size, query.window.end)
    sizes = {k: m.len() for k, m in members.items()}
    revenues = {k: int(dense.revenue.gather(m).sum() or 0) for k, m in members.items()}
    wants_cloud = "customer_tags" in frames and query.cloud_size > 0
    spans = (
        _member_spans(frames, query, dense)
        if wants_cloud or query.dimension.kind == "tag_group"
        else None
    )
    table = dense.stats(_cohort_values(customers, query, frames, dense, spans), list(members))
    if query.dimension.kind == "tag_group":
        names = dict(frames["tags"].select("tag_id", "tag").iter_rows())
        table = table.with_columns(
            pl.col("value").replace_strict(names, default=None, return_dtype=pl.String)
        )
    stats: dict[str, dict[Any, dict[str, Any]]] = {k: {} for k in members}
    for row in table.iter_rows(named=True):
        for k in members:
            count = row[f"{k}_count"]
            if count:
                stats[k][row["value"]] = {
                    "count": count,
                    "share": count / sizes[k] if sizes[k] else 0.0,
                    "conversion_rate": row[f"{k}_converted"] / count,
                    "revenue_cents": int(row[f"{k}_revenue"]),
                }
    values = set(stats["a"]) | set(stats.get("b", {}))
    buckets = []
    for value in values:
        a = stats["a"].get(value)
        entry: dict[str, Any] = {"value": value, "a": a or _empty()}
        if "b" in stats:
            b = stats["b"].get(value)
            entry["b"] = b or _empty()
            entry.update(_flag(a, b, sizes["a"], sizes["b"], query.alpha))
        buckets.append(entry)
    buckets.sort(key=lambda e: _order(e, query.dimension))
    result: dict[str, Any] = {
        "dimension": query.dimension.key,
        "dimension_label": query.dimension.label,
        "window": {"date_from": query.window.date_from, "date_to": query.window.date_to},
        "alpha": query.alpha,
        "cohorts": [
            {"key": k, "spec": c.raw, "size": sizes[k], "revenue_cents": revenues[k]}
            for k, c in cohorts
        ],
        "buckets": buckets,
        "trend": _trend(customers, cohorts, query, frames) if query.granularity else None,
        "tag_cloud": (
            _tag_cloud(query, frames, spans, list(members))
            if wants_cloud and spans is not None
            else None
        ),
    }
    return result


def _order(entry: Mapping[str, Any], dimension: Dimension) -> tuple[Any, ...]:
    value = entry["value"]
    if value is None:
        return (2, 0, "")
    if dimension.order:
        rank = dimension.order.index(value) if value in dimension.order else len(dimension.order)
        return (0, rank, value)
    count = max(entry["a"]["count"], entry.get("b", {"count": 0})["count"])
    return (1, -count, str(value))


def _trend(
    customers: pl.DataFrame,
    cohorts: list[tuple[str, Cohort]],
    query: PersonaQuery,
    frames: Mapping[str, pl.DataFrame],
) -> list[dict[str, Any]]:
    """Per period and bucket: each cohort re-formed within the period, shares at its end."""
    tz = query.window.tz
    every = "1w" if query.granularity == "week" else "1mo"
    rows: list[dict[str, Any]] = []
    counts: dict[tuple[Any, Any], dict[str, Any]] = {}
    for key, cohort in cohorts:
        found = cohort_members(
            customers,
            cohort,
            query.window,
            orders=frames.get("orders"),
            tags=frames.get("customer_tags"),
            columns=query.dimension.columns,
        )
        if cohort.basis == "all":
            continue
        local = pl.col("moment").dt.convert_time_zone(tz)
        period = local.dt.truncate(every)
        found = found.with_columns(
            period=period.dt.date(),
            at=pl.min_horizontal(
                period.dt.offset_by(every).dt.convert_time_zone("UTC"),
                pl.lit(query.window.end, dtype=pl.Datetime("us", "UTC")),
            ),
        )
        values = bucket_values(
            found, query.dimension, frames, tz=tz, age_cuts=query.age_cuts or (18,)
        ).join(found.select("id", "period"), on="id")
        sizes = found.group_by("period").agg(size=pl.len())
        per = values.group_by("period", "value").agg(count=pl.len()).join(sizes, on="period")
        for period, value, count, size in per.select(
            "period", "value", "count", "size"
        ).iter_rows():
            counts.setdefault((period, value), {})[key] = (count, size)
        for period, size in sizes.iter_rows():
            counts.setdefault((period, "\0size"), {})[key] = (size, size)
    periods = sorted({p for p, v in counts if v != "\0size"})
    values_seen = {v for _, v in counts if v != "\0size"}
    today = utcnow().astimezone(ZoneInfo(tz)).date()
    for period in periods:
        sizes_in = counts.get((period, "\0size"), {})
        after = _next_period(period, query.granularity)
        # Whole: inside the window and over (the first and last may be cut by the window).
        complete = period >= query.window.date_from and after <= min(
            query.window.date_to + dt.timedelta(days=1), today
        )
        for value in sorted(values_seen, key=lambda v: (v is None, str(v))):
            cell = counts.get((period, value), {})
            row: dict[str, Any] = {"period": period, "value": value, "complete": complete}
            for key, _ in cohorts:
                count = cell.get(key, (0, 0))[0]
                size = sizes_in.get(key, (0, 0))[0]
                row[f"{key}_count"] = count
                row[f"{key}_share"] = count / size if size else None
            rows.append(row)
    return rows


def _next_period(start: dt.date, granularity: str | None) -> dt.date:
    if granularity == "week":
        return start + dt.timedelta(days=7)
    return (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def _tag_cloud(
    query: PersonaQuery, frames: Mapping[str, pl.DataFrame], spans: pl.DataFrame, keys: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """Per cohort: the tags its customers carried at the window's end, by count."""
    counted = (
        spans.group_by("tag_id")
        .agg([pl.col(f"_in_{k}").sum().alias(k) for k in keys])
        .join(frames["tags"], on="tag_id")
    )
    cloud: dict[str, list[dict[str, Any]]] = {}
    for k in keys:
        top = (
            counted.filter(pl.col(k) > 0)
            .sort([k, "tag_id"], descending=[True, False])
            .head(query.cloud_size)
        )
        largest = top[k].max() if top.height else 0
        cloud[k] = [
            {
                "tag_id": row["tag_id"],
                "tag": row["tag"],
                "tag_group": row["tag_group"],
                "count": row[k],
                "weight": row[k] / largest if largest else 0.0,
            }
            for row in top.iter_rows(named=True)
        ]
    return cloud


def _id_space(frames: Mapping[str, pl.DataFrame]) -> int:
    """One more than the largest customer id any frame refers to (the dense arrays' length)."""
    columns = [frames["customers"]["id"]]
    columns += [frames[n]["customer_id"] for n in ("customer_tags", "orders") if n in frames]
    return max((int(c.max() or 0) for c in columns if c.len()), default=0) + 1  # type: ignore[arg-type]


persona.__doc__ = PERSONA_DEFINITION
