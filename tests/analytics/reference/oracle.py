"""Independent computations of the documented definitions, in plain Python over the ledger."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter, defaultdict
from fractions import Fraction
from zoneinfo import ZoneInfo

from .data import Ledger, OrderRow

DAY = dt.timedelta(days=1)

# The R × F grid exactly as RFM_DEFINITION prints it (rows R 5..1, columns F 1..5).
RFM_GRID_TEXT = {
    5: ("new", "potential_loyalists", "potential_loyalists", "champions", "champions"),
    4: ("promising", "potential_loyalists", "potential_loyalists", "loyal", "loyal"),
    3: ("about_to_sleep", "about_to_sleep", "need_attention", "loyal", "loyal"),
    2: ("hibernating", "hibernating", "at_risk", "at_risk", "cant_lose"),
    1: ("lost", "hibernating", "at_risk", "at_risk", "cant_lose"),
}


def grid_from_definition(definition: str) -> dict[int, tuple[str, ...]]:
    """The markdown table in the definition → {R: (segment for F=1..5)}."""
    grid = {}
    for line in definition.splitlines():
        match = re.fullmatch(r"\| ([1-5]) \| (.+) \|", line.strip())
        if match:
            grid[int(match[1])] = tuple(cell.strip() for cell in match[2].split("|"))
    return grid


def in_window(ledger: Ledger, start: dt.datetime, end: dt.datetime) -> list[OrderRow]:
    return [o for o in ledger.live_orders() if start <= o.ordered_at < end]


def quintiles(values: dict[int, int], *, smaller_is_better: bool) -> dict[int, int]:
    """score = 1 + floor(5 (rank − 1) / n), rank from worst to best, ties at their lowest rank."""
    n = len(values)
    result = {}
    for key, value in values.items():
        if smaller_is_better:
            worse = sum(1 for v in values.values() if v > value)
        else:
            worse = sum(1 for v in values.values() if v < value)
        rank = 1 + worse
        result[key] = 1 + (5 * (rank - 1)) // n
    return result


def rfm(ledger: Ledger, start: dt.datetime, end: dt.datetime) -> dict[int, dict]:
    per: dict[int, list[OrderRow]] = defaultdict(list)
    for order in in_window(ledger, start, end):
        per[order.customer_id].append(order)
    recency = {c: (end - max(o.ordered_at for o in os)) // DAY for c, os in per.items()}
    frequency = {c: len(os) for c, os in per.items()}
    monetary = {c: sum(o.amount_cents for o in os) for c, os in per.items()}
    r = quintiles(recency, smaller_is_better=True)
    f = quintiles(frequency, smaller_is_better=False)
    m = quintiles(monetary, smaller_is_better=False)
    return {
        c: {
            "customer_id": c,
            "recency_days": recency[c],
            "frequency": frequency[c],
            "monetary_cents": monetary[c],
            "r": r[c],
            "f": f[c],
            "m": m[c],
            "segment": RFM_GRID_TEXT[r[c]][f[c] - 1],
        }
        for c in per
    }


def pyramid(
    ledger: Ledger, start: dt.datetime, end: dt.datetime, cuts: tuple[str, str, str]
) -> dict:
    spend: Counter[int] = Counter()
    for order in in_window(ledger, start, end):
        spend[order.customer_id] += order.amount_cents
    ranked = sorted(((s, c) for c, s in spend.items() if s > 0), key=lambda sc: (-sc[0], sc[1]))
    n = len(ranked)
    bounds = [math.ceil(n * Fraction(c) / 100) for c in cuts]
    tiers: dict[str, list[int]] = {t: [] for t in "ABCD"}
    for position, (s, _) in enumerate(ranked, start=1):
        tier = next((t for t, b in zip("ABC", bounds, strict=True) if position <= b), "D")
        tiers[tier].append(s)
    total = sum(s for s, _ in ranked)
    edges = [0.0, *(float(c) for c in cuts), 100.0]
    return {
        "cuts": [float(c) for c in cuts],
        "customers_with_spend": n,
        "customers_without_spend": len(ledger.live) - n,
        "tiers": [
            {
                "tier": t,
                "from_percent": edges[i],
                "to_percent": edges[i + 1],
                "count": len(tiers[t]),
                "revenue_cents": sum(tiers[t]),
                "revenue_share": sum(tiers[t]) / total if total else 0.0,
                "min_spend_cents": min(tiers[t], default=None),
                "max_spend_cents": max(tiers[t], default=None),
            }
            for i, t in enumerate("ABCD")
        ],
    }


def month_index(moment: dt.datetime, tz: ZoneInfo) -> int:
    at = moment.astimezone(tz)
    return at.year * 12 + at.month - 1


def retention(ledger: Ledger, now: dt.datetime, tz: ZoneInfo, months: int, factor: float) -> dict:
    orders = [o for o in ledger.live_orders() if o.ordered_at <= now]
    by_customer: dict[int, list[dt.datetime]] = defaultdict(list)
    for order in orders:
        by_customer[order.customer_id].append(order.ordered_at)
    current = month_index(now, tz)
    first_month = current - months + 1
    cohort_of = {c: min(month_index(t, tz) for t in ts) for c, ts in by_customer.items()}
    active = {c: {month_index(t, tz) for t in ts} for c, ts in by_customer.items()}
    cohorts = []
    for cohort in range(first_month, current + 1):
        members = [c for c, m in cohort_of.items() if m == cohort]
        if not members:
            continue
        cells: list[float | None] = []
        for k in range(months):
            if cohort + k > current:
                cells.append(None)
            else:
                cells.append(sum(1 for c in members if cohort + k in active[c]) / len(members))
        cohorts.append(
            {
                "cohort": f"{cohort // 12:04d}-{cohort % 12 + 1:02d}",
                "size": len(members),
                "retention": cells,
            }
        )
    repeat = sum(1 for ts in by_customer.values() if len(ts) >= 2)
    churn = []
    for c, ts in by_customer.items():
        if len(ts) < 2:
            continue
        first, last = min(ts), max(ts)
        gap = (last - first) / DAY / (len(ts) - 1)
        if gap <= 0:
            continue
        since = (now - last) / DAY
        if since > factor * gap:
            churn.append(
                {
                    "customer_id": c,
                    "orders": len(ts),
                    "last_order_at": last,
                    "mean_gap_days": gap,
                    "days_since": since,
                    "overdue_ratio": since / gap,
                }
            )
    churn.sort(key=lambda row: (-row["overdue_ratio"], row["customer_id"]))
    return {
        "cohorts": cohorts,
        "customers_with_orders": len(by_customer),
        "repeat_customers": repeat,
        "repeat_purchase_rate": repeat / len(by_customer) if by_customer else None,
        "churn": churn,
    }


def transactions(
    ledger: Ledger, start: dt.datetime, end: dt.datetime, *, with_lines_only: bool = False
) -> list[frozenset[int]]:
    """Orders in the window → the distinct products on their lines."""
    return [
        frozenset(line.product_id for line in o.lines)
        for o in in_window(ledger, start, end)
        if o.lines or not with_lines_only
    ]
