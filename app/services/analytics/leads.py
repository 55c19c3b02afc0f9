"""H8 lead scoring: naive Bayes over fields and tags, trained on the scope's own history."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from app.access import CustomerScope
from app.services.analytics.common import (
    DEFAULT_AGE_CUTS,
    age_band_dimension,
    bucket_values,
)
from app.services.analytics.frames import scoped

LEAD_SCORE_DEFINITION = """\
The **probability** that a lead (a customer in scope who has not signed) signs, from a naive
Bayes model with Laplace smoothing (α = 1) learned from the scope's history. **Attributes**: the
fields industry, level, source, province, kind, gender, the age band, and each tag the customer
carried at its *observation moment* (30 days after it was created, or when it signed if sooner, or
now if sooner: what a rep knows early, not what was added after the outcome). **Training
examples**: customers who signed (positive) and customers created at least `maturity_days` (90)
ago who have not signed (negative). The **hold-out**: the newest 20 % of the examples by creation
time are scored by a model trained on the older 80 %; `holdout_accuracy` (threshold 0.5) and
`holdout_auc` (the probability that a random positive outscores a random negative) are reported
with the base rate. The scores themselves come from a model trained on all examples.
**top_attributes**: the customer's values with the largest weights log(P(value | signed) /
P(value | not signed)), strongest first."""

FIELDS = ("industry", "level", "source", "province", "kind", "gender")
OBSERVE_DAYS = 30
MATURITY_DAYS = 90


@dataclass(frozen=True)
class LeadQuery:
    now: dt.datetime
    tz: str
    limit: int = 50
    offset: int = 0


def _observations(
    customers: pl.DataFrame, frames: Mapping[str, pl.DataFrame], now: dt.datetime, tz: str
) -> pl.DataFrame:
    """(id, attribute, value): one row per field value and per tag carried at observation."""
    now_lit = pl.lit(now, dtype=pl.Datetime("us", "UTC"))
    observed = customers.with_columns(
        at=pl.min_horizontal(
            pl.col("created_at") + pl.duration(days=OBSERVE_DAYS),
            pl.col("signed_at").fill_null(now_lit),
            now_lit,
        )
    )
    parts = [
        observed.select(
            "id", attribute=pl.lit(name), value=pl.col(name).cast(pl.String).fill_null("∅")
        )
        for name in FIELDS
    ]
    band = age_band_dimension(DEFAULT_AGE_CUTS)
    parts.append(
        bucket_values(observed, band, frames, tz=tz, age_cuts=DEFAULT_AGE_CUTS).select(
            "id", attribute=pl.lit("age_band"), value=pl.col("value").fill_null("∅")
        )
    )
    if "customer_tags" in frames:
        tags = (
            frames["customer_tags"]
            .join(observed.select(pl.col("id").alias("customer_id"), "at"), on="customer_id")
            .filter(
                (pl.col("added_at") < pl.col("at"))
                & (pl.col("removed_at").is_null() | (pl.col("removed_at") >= pl.col("at")))
            )
            .join(frames["tags"], on="tag_id")
            .select(
                pl.col("customer_id").alias("id"),
                attribute=pl.lit("tag:") + pl.col("tag_group"),
                value=pl.col("tag"),
            )
            .unique()
        )
        parts.append(tags)
    return pl.concat(parts)


@dataclass
class Model:
    prior: float  # log odds of signing
    # (attribute, value) -> log likelihood ratio when present
    weights: dict[tuple[str, str], float]
    # tag (attribute, value) -> log ratio when absent; their sum is part of every score
    absent: dict[tuple[str, str], float]
    positives: int
    examples: int

    def score(self, observations: pl.DataFrame) -> pl.DataFrame:
        """(id, logit) for every id in ``observations``."""
        table = pl.DataFrame(
            [(a, v, w, self.absent.get((a, v), 0.0)) for (a, v), w in self.weights.items()],
            schema={"attribute": pl.String, "value": pl.String, "w": pl.Float64, "wa": pl.Float64},
            orient="row",
        )
        base = self.prior + sum(self.absent.values())
        return (
            observations.join(table, on=["attribute", "value"], how="left")
            .group_by("id")
            .agg(
                logit=pl.lit(base)
                + (pl.col("w").fill_null(0.0) - pl.col("wa").fill_null(0.0)).sum()
            )
        )


def train(observations: pl.DataFrame, labels: pl.DataFrame) -> Model:
    """Naive Bayes with Laplace smoothing over ``observations`` of the labelled ids."""
    labelled = observations.join(labels, on="id")
    n = labels.height
    pos = int(labels["signed"].sum())
    neg = n - pos
    counts = labelled.group_by("attribute", "value").agg(
        pos=pl.col("signed").sum(), neg=(~pl.col("signed")).sum()
    )
    cardinality = dict(
        counts.filter(~pl.col("attribute").str.starts_with("tag:"))
        .group_by("attribute")
        .agg(k=pl.len())
        .iter_rows()
    )
    weights: dict[tuple[str, str], float] = {}
    absent: dict[tuple[str, str], float] = {}
    for attribute, value, p, q in counts.iter_rows():
        if attribute.startswith("tag:"):
            # Bernoulli feature: present / absent.
            p1, p0 = (p + 1) / (pos + 2), (q + 1) / (neg + 2)
            weights[(attribute, value)] = math.log(p1 / p0)
            absent[(attribute, value)] = math.log((1 - p1) / (1 - p0))
        else:
            k = cardinality[attribute]
            weights[(attribute, value)] = math.log(((p + 1) / (pos + k)) / ((q + 1) / (neg + k)))
    prior = math.log((pos + 1) / (neg + 1))
    return Model(prior, weights, absent, pos, n)


def _auc(scores: list[float], truth: list[bool]) -> float | None:
    ranked = sorted(zip(scores, truth, strict=True))
    pos = sum(truth)
    neg = len(truth) - pos
    if not pos or not neg:
        return None
    # Mann–Whitney U with average ranks for ties.
    rank_sum = 0.0
    i = 0
    while i < len(ranked):
        j = i
        while j + 1 < len(ranked) and ranked[j + 1][0] == ranked[i][0]:
            j += 1
        average = (i + j) / 2 + 1
        rank_sum += average * sum(1 for k in range(i, j + 1) if ranked[k][1])
        i = j + 1
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def lead_model(
    frames: Mapping[str, pl.DataFrame], scope: CustomerScope, now: dt.datetime, tz: str
) -> tuple[Model | None, dict[str, Any], pl.DataFrame, pl.DataFrame]:
    """(model, report, observations, scoped customers)."""
    customers = scoped(frames["customers"], scope)
    observations = _observations(customers, frames, now, tz)
    mature = now - dt.timedelta(days=MATURITY_DAYS)
    examples = customers.filter(
        pl.col("signed_at").is_not_null() | (pl.col("created_at") <= mature)
    ).select("id", "created_at", signed=pl.col("signed_at").is_not_null())
    report: dict[str, Any] = {
        "method": "naive_bayes",
        "trained_on": examples.height,
        "positives": int(examples["signed"].sum() or 0),
        "holdout_size": 0,
        "holdout_accuracy": None,
        "holdout_auc": None,
        "base_rate": None,
        "attributes": [*FIELDS, "age_band", "tags"],
    }
    if examples.height < 10 or report["positives"] == 0 or report["positives"] == examples.height:
        return None, report, observations, customers
    ordered = examples.sort(["created_at", "id"])
    cut = int(ordered.height * 0.8)
    older, newer = ordered.head(cut), ordered.slice(cut)
    trial = train(observations, older.select("id", "signed"))
    scored = trial.score(observations.join(newer.select("id"), on="id", how="semi")).join(
        newer.select("id", "signed"), on="id"
    )
    probabilities = [1 / (1 + math.exp(-x)) for x in scored["logit"].to_list()]
    truth = scored["signed"].to_list()
    report["holdout_size"] = newer.height
    report["holdout_accuracy"] = (
        sum((p >= 0.5) == t for p, t in zip(probabilities, truth, strict=True)) / len(truth)
        if truth
        else None
    )
    report["holdout_auc"] = _auc(probabilities, truth)
    report["base_rate"] = sum(truth) / len(truth) if truth else None
    return train(observations, ordered.select("id", "signed")), report, observations, customers


def lead_probabilities(
    frames: Mapping[str, pl.DataFrame], scope: CustomerScope, now: dt.datetime, tz: str
) -> pl.DataFrame:
    """(id, probability) for the open leads in scope (empty without enough history)."""
    model, _report, observations, customers = lead_model(frames, scope, now, tz)
    open_ids = customers.filter(pl.col("signed_at").is_null()).select("id")
    if model is None:
        return open_ids.with_columns(probability=pl.lit(None, dtype=pl.Float64))
    scored = model.score(observations.join(open_ids, on="id", how="semi"))
    return scored.select("id", probability=1 / (1 + (-pl.col("logit")).exp()))


def lead_scores(
    frames: Mapping[str, pl.DataFrame], scope: CustomerScope, q: LeadQuery
) -> dict[str, Any]:
    model, report, observations, customers = lead_model(frames, scope, q.now, q.tz)
    open_leads = customers.filter(pl.col("signed_at").is_null())
    if model is None:
        return {"model": report, "total": 0, "items": []}
    scored = (
        model.score(observations.join(open_leads.select("id"), on="id", how="semi"))
        .with_columns(probability=1 / (1 + (-pl.col("logit")).exp()))
        .sort(["probability", "id"], descending=[True, False])
    )
    page = (
        scored.slice(q.offset, q.limit)
        .join(open_leads.select("id", "name", "owner_id", "created_at"), on="id")
        .sort(["probability", "id"], descending=[True, False])
    )
    mine = observations.join(page.select("id"), on="id", how="semi")
    items = []
    for row in page.iter_rows(named=True):
        values = mine.filter(pl.col("id") == row["id"])
        contributions = sorted(
            (
                {"attribute": a, "value": v, "weight": model.weights.get((a, v), 0.0)}
                for a, v in values.select("attribute", "value").iter_rows()
            ),
            key=lambda c: -c["weight"],
        )
        items.append(
            {
                "customer_id": row["id"],
                "name": row["name"],
                "owner_id": row["owner_id"],
                "created_at": row["created_at"],
                "probability": row["probability"],
                "top_attributes": [c for c in contributions if c["weight"] > 0][:3],
            }
        )
    return {"model": report, "total": scored.height, "items": items}


lead_scores.__doc__ = LEAD_SCORE_DEFINITION
