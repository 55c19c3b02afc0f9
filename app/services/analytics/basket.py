"""H7 basket: frequent item sets and association rules from order lines (Apriori, set-based)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from app.access import CustomerScope
from app.errors import ValidationFailed, field_error
from app.services.analytics.common import Window
from app.services.analytics.frames import of_customers, scoped

BASKET_DEFINITION = """\
A **transaction** is an order with lines placed in the window by a customer in scope (orders
recorded as an amount only have no items); its items are the distinct products on its lines.
The **support** of an item set = transactions containing all of it / transactions. Frequent item
sets have support ≥ `min_support` (Apriori, up to `max_len` items). A **rule** X → Y splits a
frequent item set into antecedent X and consequent Y: **confidence** = support(X ∪ Y) /
support(X), **lift** = confidence / support(Y) (> 1: bought together more often than chance).
Rules with confidence ≥ `min_confidence` are listed, highest lift first. **Recommendations** for
a customer come from rules whose antecedent the customer has bought (ever) and whose single
consequent they have not, best confidence first."""

MAX_ITEMSETS = 20_000


@dataclass(frozen=True)
class BasketQuery:
    window: Window
    min_support: float = 0.01
    min_confidence: float = 0.2
    max_len: int = 3
    limit: int = 100


@dataclass(frozen=True)
class Mined:
    transactions: int
    # frozenset of product ids -> transactions containing it
    counts: dict[frozenset[int], int]
    rules: list[dict[str, Any]]


def mine(lines: pl.DataFrame, q: BasketQuery) -> Mined:
    """Frequent item sets and rules from (order_id, product_id) rows of the window's orders."""
    items = lines.select("order_id", "product_id").unique()
    n = items["order_id"].n_unique()
    counts: dict[frozenset[int], int] = {}
    if n == 0:
        return Mined(0, counts, [])
    threshold = q.min_support * n
    singles = items.group_by("product_id").agg(count=pl.len()).filter(pl.col("count") >= threshold)
    for pid, count in singles.iter_rows():
        counts[frozenset([pid])] = count
    frequent = items.join(singles.select("product_id"), on="product_id", how="semi")
    level = frequent.rename({"product_id": "i1"})
    names = ["i1"]
    for size in range(2, q.max_len + 1):
        new = f"i{size}"
        candidates = level.join(frequent.rename({"product_id": new}), on="order_id").filter(
            pl.col(new) > pl.col(names[-1])
        )
        if size > 2:
            # Apriori pruning: every (size-1)-subset must be frequent; the ones ending in the new
            # item besides the prefix were checked when the prefix was built.
            for drop in range(len(names)):
                subset = [c for i, c in enumerate(names) if i != drop] + [new]
                known = _frame_of(counts, size - 1, subset)
                candidates = candidates.join(known, on=subset, how="semi")
        cols = [*names, new]
        counted = candidates.group_by(cols).agg(count=pl.len()).filter(pl.col("count") >= threshold)
        if counted.height == 0:
            break
        for row in counted.iter_rows():
            counts[frozenset(row[:-1])] = row[-1]
        if len(counts) > MAX_ITEMSETS:
            raise ValidationFailed(
                f"more than {MAX_ITEMSETS} frequent item sets: raise min_support",
                errors=[field_error("min_support", "too low for this data", where="query")],
            )
        level = candidates.join(counted.select(cols), on=cols, how="semi").select("order_id", *cols)
        names = cols
    rules: list[dict[str, Any]] = []
    for itemset, count in counts.items():
        if len(itemset) < 2:
            continue
        support = count / n
        for k in range(1, len(itemset)):
            for antecedent in itertools.combinations(sorted(itemset), k):
                x = frozenset(antecedent)
                y = itemset - x
                confidence = count / counts[x]
                if confidence < q.min_confidence:
                    continue
                rules.append(
                    {
                        "antecedent": sorted(x),
                        "consequent": sorted(y),
                        "count": count,
                        "support": support,
                        "confidence": confidence,
                        "lift": confidence / (counts[y] / n),
                    }
                )
    rules.sort(key=_rule_order)
    return Mined(n, counts, rules)


def _rule_order(rule: Mapping[str, Any]) -> tuple[float, float, list[int], list[int]]:
    return (-rule["lift"], -rule["confidence"], rule["antecedent"], rule["consequent"])


def _frame_of(counts: Mapping[frozenset[int], int], size: int, columns: list[str]) -> pl.DataFrame:
    rows = [sorted(s) for s in counts if len(s) == size]
    return pl.DataFrame(rows, schema=dict.fromkeys(columns, pl.Int64), orient="row")


def window_lines(
    frames: Mapping[str, pl.DataFrame], scope: CustomerScope, win: Window
) -> pl.DataFrame:
    customers = scoped(frames["customers"], scope)
    orders = of_customers(win.orders(frames["orders"]), customers)
    return frames["order_lines"].join(orders.select("order_id"), on="order_id", how="semi")


def _refs(ids: list[int], names: Mapping[int, str]) -> list[dict[str, Any]]:
    return [{"product_id": i, "name": names.get(i, str(i))} for i in ids]


def basket(
    frames: Mapping[str, pl.DataFrame], scope: CustomerScope, q: BasketQuery
) -> dict[str, Any]:
    mined = mine(window_lines(frames, scope, q.window), q)
    names = dict(frames["products"].select("product_id", "product").iter_rows())
    itemsets = sorted(mined.counts.items(), key=lambda kv: (-kv[1], sorted(kv[0])))
    return {
        "window": {"date_from": q.window.date_from, "date_to": q.window.date_to},
        "transactions": mined.transactions,
        "min_support": q.min_support,
        "min_confidence": q.min_confidence,
        "itemsets": [
            {
                "items": _refs(sorted(s), names),
                "count": c,
                "support": c / mined.transactions,
            }
            for s, c in itemsets[: q.limit]
        ],
        "rules": [
            {
                **r,
                "antecedent": _refs(r["antecedent"], names),
                "consequent": _refs(r["consequent"], names),
            }
            for r in mined.rules[: q.limit]
        ],
    }


basket.__doc__ = BASKET_DEFINITION


def recommendations(
    frames: Mapping[str, pl.DataFrame], scope: CustomerScope, customer_id: int, q: BasketQuery
) -> list[dict[str, Any]]:
    """Products for one customer from the rules (see BASKET_DEFINITION), best first."""
    customers = scoped(frames["customers"], scope)
    own_orders = frames["orders"].filter(pl.col("customer_id") == customer_id)
    bought = set(
        frames["order_lines"]
        .join(own_orders.select("order_id"), on="order_id", how="semi")["product_id"]
        .to_list()
    )
    if not bought or customers.filter(pl.col("id") == customer_id).height == 0:
        return []
    mined = mine(window_lines(frames, scope, q.window), q)
    names = dict(frames["products"].select("product_id", "product").iter_rows())
    best: dict[int, dict[str, Any]] = {}
    for rule in mined.rules:
        if len(rule["consequent"]) != 1 or not set(rule["antecedent"]) <= bought:
            continue
        (target,) = rule["consequent"]
        if target in bought:
            continue
        key = (rule["confidence"], rule["lift"])
        held = best.get(target)
        if held is None or key > (held["confidence"], held["lift"]):
            best[target] = rule
    ranked = sorted(best.items(), key=lambda kv: (-kv[1]["confidence"], -kv[1]["lift"], kv[0]))
    return [
        {
            "product": {"product_id": pid, "name": names.get(pid, str(pid))},
            "because": _refs(rule["antecedent"], names),
            "confidence": rule["confidence"],
            "lift": rule["lift"],
            "support": rule["support"],
        }
        for pid, rule in ranked[: q.limit]
    ]
