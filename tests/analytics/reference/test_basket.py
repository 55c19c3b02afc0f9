"""Basket analysis against mlxtend (apriori + association_rules) on the same transactions."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from mlxtend.frequent_patterns import apriori, association_rules

from app.models import Order, OrderLine, Product
from app.models.base import utcnow
from tests.factories import make_customer

from . import oracle
from .data import DATE_FROM, DATE_TO, WIN_END, WIN_START

WINDOW = {"date_from": DATE_FROM.isoformat(), "date_to": DATE_TO.isoformat()}


def mlxtend_reference(baskets: list[frozenset[int]], min_support, min_confidence, max_len):
    products = sorted(set().union(*baskets))
    onehot = pd.DataFrame([[p in b for p in products] for b in baskets], columns=products)
    frequent = apriori(onehot, min_support=min_support, use_colnames=True, max_len=max_len)
    rules = association_rules(
        frequent, num_itemsets=len(baskets), metric="confidence", min_threshold=min_confidence
    )
    itemsets = {frozenset(row.itemsets): row.support for row in frequent.itertuples()}
    ruled = {
        (frozenset(row.antecedents), frozenset(row.consequents)): (
            row.support,
            row.confidence,
            row.lift,
        )
        for row in rules.itertuples()
    }
    return itemsets, ruled


def ids(refs: list[dict]) -> frozenset[int]:
    return frozenset(ref["product_id"] for ref in refs)


async def test_basket_matches_mlxtend(client, admin, ledger):
    for min_support, min_confidence, max_len in [(0.013, 0.27, 3), (0.032, 0.11, 2)]:
        await check_basket(client, admin, ledger, min_support, min_confidence, max_len)
    await check_orders_without_lines(client, admin, ledger)


async def check_basket(client, admin, ledger, min_support, min_confidence, max_len):
    response = await client.get(
        "/api/v1/analytics/basket",
        params={
            **WINDOW,
            "min_support": min_support,
            "min_confidence": min_confidence,
            "max_len": max_len,
            "limit": 200,
        },
        headers=admin,
    )
    assert response.status_code == 200, response.text
    got = response.json()
    # The service counts the orders that have lines (see check_orders_without_lines).
    baskets = oracle.transactions(ledger, WIN_START, WIN_END, with_lines_only=True)
    itemsets, rules = mlxtend_reference(baskets, min_support, min_confidence, max_len)

    assert got["transactions"] == len(baskets)
    assert len(got["itemsets"]) < 200 and len(got["rules"]) < 200  # nothing cut by the limit
    have_sets = {ids(s["items"]): s for s in got["itemsets"]}
    assert set(have_sets) == set(itemsets)
    for items, support in itemsets.items():
        assert have_sets[items]["support"] == pytest.approx(support)
        assert have_sets[items]["count"] == round(support * len(baskets))
    assert max(len(s) for s in itemsets) == max_len  # the data has item sets of every size

    have_rules = {(ids(r["antecedent"]), ids(r["consequent"])): r for r in got["rules"]}
    assert set(have_rules) == set(rules)
    for key, (support, confidence, lift) in rules.items():
        rule = have_rules[key]
        assert (rule["support"], rule["confidence"], rule["lift"]) == (
            pytest.approx(support),
            pytest.approx(confidence),
            pytest.approx(lift),
        )
    lifts = [r["lift"] for r in got["rules"]]
    assert lifts == sorted(lifts, reverse=True)
    assert len(rules) > 10


async def check_orders_without_lines(client, admin, ledger):
    """BASKET_DEFINITION: 'A transaction is an order placed in the window'; the service only
    sees orders through their lines, so an order recorded with an amount only is not one."""
    response = await client.get(
        "/api/v1/analytics/basket", params={**WINDOW, "min_support": 0.5}, headers=admin
    )
    every_order = oracle.transactions(ledger, WIN_START, WIN_END)
    with_lines = oracle.transactions(ledger, WIN_START, WIN_END, with_lines_only=True)
    assert len(every_order) > len(with_lines)
    assert response.json()["transactions"] == len(with_lines)


async def test_recommendations_by_hand(app, client, maker, org, admin):
    """Baskets {A,B} {A,B} {A,C} {B,C} {A} in the last year: n = 5, A 4, B 3, C 2, AB 2, AC 1,
    BC 1. The target bought A in the window and D two years ago (D is in no rule).
    A→B: confidence 2/4, lift (2/4)/(3/5) = 5/6, support 2/5; A→C: 1/4, (1/4)/(2/5) = 5/8, 1/5."""
    async with maker() as session, session.begin():
        products = [Product(name=n, unit_price_cents=100) for n in "ABCD"]
        session.add_all(products)
    a, b, c, d = (p.id for p in products)
    buyers = [await make_customer(maker, org.rep_a) for _ in range(5)]
    target, idle = buyers[4], await make_customer(maker, org.rep_a)
    recent = utcnow() - dt.timedelta(days=3)
    baskets = [
        (buyers[0], recent, [a, b]),
        (buyers[1], recent, [a, b]),
        (buyers[2], recent, [a, c]),
        (buyers[3], recent, [b, c]),
        (target, recent, [a]),
        (target, utcnow() - dt.timedelta(days=730), [d]),
    ]
    async with maker() as session, session.begin():
        for customer, at, items in baskets:
            order = Order(customer_id=customer.id, ordered_at=at, amount_cents=100, source="api")
            session.add(order)
            await session.flush()
            session.add_all(
                OrderLine(order_id=order.id, product_id=p, quantity=1, unit_price_cents=100)
                for p in items
            )
    url = f"/api/v1/customers/{target.id}/recommendations"
    response = await client.get(url, headers=admin)
    assert response.status_code == 200, response.text
    got = response.json()
    assert [(r["product"]["product_id"], ids(r["because"])) for r in got] == [
        (b, {a}),
        (c, {a}),
    ]
    assert [(r["confidence"], r["lift"], r["support"]) for r in got] == [
        (pytest.approx(2 / 4), pytest.approx(5 / 6), pytest.approx(2 / 5)),
        (pytest.approx(1 / 4), pytest.approx(5 / 8), pytest.approx(1 / 5)),
    ]
    stricter = await client.get(url, params={"min_confidence": 0.3}, headers=admin)
    assert [r["product"]["product_id"] for r in stricter.json()] == [b]
    # Bought B and C: B→A (2/3, lift 5/6) beats C→A (1/2, lift 5/8) for A.
    other = await client.get(f"/api/v1/customers/{buyers[3].id}/recommendations", headers=admin)
    assert [(r["product"]["product_id"], r["confidence"]) for r in other.json()] == [
        (a, pytest.approx(2 / 3)),
    ]
    assert (
        await client.get(f"/api/v1/customers/{idle.id}/recommendations", headers=admin)
    ).json() == []
