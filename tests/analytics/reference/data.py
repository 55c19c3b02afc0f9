"""A deterministic orders ledger for checking the analytics against independent computations.

``generate`` builds the data in plain Python (the single source the reference computations read);
``insert`` writes exactly that into the tables with Core inserts. Identifiers are offset per call
so that each test's ledger has its own ``max(id)`` (the analytics frames are cached by it).
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import Customer, Order, OrderLine, Product
from app.services.normalize import normalize_name
from tests.factories import Org

TZ = ZoneInfo("Asia/Shanghai")
SEED = 20261201


def local(*args: int) -> dt.datetime:
    """An instant given as wall-clock time in the business time zone."""
    return dt.datetime(*args, tzinfo=TZ)  # type: ignore[misc]


DATA_START = local(2025, 6, 1)
# The clock for retention (the endpoint has no "as of" parameter: the tests pin utcnow).
NOW = local(2026, 12, 15, 10, 0)
DATA_END = NOW
# The RFM / pyramid / basket window: [2025-12-01 00:00, 2026-12-01 00:00) Asia/Shanghai.
DATE_FROM = dt.date(2025, 12, 1)
DATE_TO = dt.date(2026, 11, 30)
WIN_START = local(2025, 12, 1)
WIN_END = local(2026, 12, 1)
US = dt.timedelta(microseconds=1)

_generation = itertools.count(1)


@dataclass
class Line:
    product_id: int
    quantity: int
    unit_price_cents: int
    unit_cost_cents: int


@dataclass
class OrderRow:
    id: int
    customer_id: int
    ordered_at: dt.datetime
    amount_cents: int
    cost_cents: int
    lines: list[Line]
    source: str = "api"


@dataclass
class CustomerRow:
    id: int
    name: str
    owner_id: int | None
    kind: str
    deleted: bool = False


@dataclass
class Ledger:
    products: dict[int, tuple[str, int, int]]  # id -> (name, price, cost)
    customers: list[CustomerRow]
    orders: list[OrderRow]
    edge: dict[str, int] = field(default_factory=dict)  # edge case -> customer id

    @property
    def live(self) -> set[int]:
        return {c.id for c in self.customers if not c.deleted}

    def live_orders(self) -> list[OrderRow]:
        live = self.live
        return [o for o in self.orders if o.customer_id in live]


def _moment(rng: random.Random, start: dt.datetime, end: dt.datetime) -> dt.datetime:
    span = int((end - start).total_seconds())
    return (start + dt.timedelta(seconds=rng.randrange(span))).astimezone(dt.UTC)


def generate(org: Org, *, seed: int = SEED) -> Ledger:
    rng = random.Random(seed)
    gen = next(_generation)
    base = 1_000_000 * gen
    product_ids = [base + i for i in range(10)]
    prices = [68_00, 128_00, 199_00, 299_00, 499_00, 880_00, 1_280_00, 2_999_00, 5_800_00, 0]
    products = {
        pid: (f"产品{i}" if price else "赠品", price, price * rng.randint(30, 70) // 100)
        for i, (pid, price) in enumerate(zip(product_ids, prices, strict=True))
    }
    # Products bought together: 0+1, 2+3(+4), 5+6.
    partners = {0: [1], 1: [0], 2: [3, 4], 3: [2], 4: [2, 3], 5: [6], 6: [5]}
    weights = [30, 18, 14, 10, 8, 7, 5, 3, 2, 3]
    owners = [org.rep_a.id, org.rep_b.id, org.rep_c.id, org.rep_d.id, org.mgr_east.id, None]

    customers: list[CustomerRow] = []
    orders: list[OrderRow] = []
    next_order = itertools.count(base)

    def lines_for(k: int) -> list[Line]:
        first = rng.choices(range(10), weights)[0]
        picked = [first]
        if first in partners and rng.random() < 0.55:
            picked += rng.sample(partners[first], rng.randint(1, len(partners[first])))
        while len(picked) < k:
            picked.append(rng.choices(range(10), weights)[0])
        if rng.random() < 0.03:
            picked.append(picked[0])  # the same product on two lines
        result = []
        for index in picked:
            pid = product_ids[index]
            _, price, cost = products[pid]
            result.append(Line(pid, rng.choice([1, 1, 1, 2, 3]), price, cost))
        return result

    def add_order(cid: int, at: dt.datetime, lines: list[Line] | None = None) -> OrderRow:
        lineless = lines is None and rng.random() < 0.02
        if lines is None:
            lines = lines_for(rng.choice([1, 1, 1, 2, 2, 3, 4]))
        amount = sum(line.quantity * line.unit_price_cents for line in lines)
        cost = sum(line.quantity * line.unit_cost_cents for line in lines)
        source = "api"
        if lineless:  # a contract recorded with an amount only: no lines
            lines, amount, cost, source = [], rng.randint(1, 40) * 1000_00, 0, "contract"
        row = OrderRow(next(next_order), cid, at.astimezone(dt.UTC), amount, cost, lines, source)
        orders.append(row)
        return row

    # (archetype, how many, orders per customer, period)
    plan = [
        ("none", 15, (0, 0), (DATA_START, DATA_END)),
        ("frequent", 45, (8, 24), (DATA_START, DATA_END)),
        ("regular", 90, (3, 10), (DATA_START, DATA_END)),
        ("stopped", 45, (1, 6), (DATA_START, WIN_START)),
        ("one_off", 75, (1, 1), (DATA_START, DATA_END)),
        ("late", 30, (1, 5), (local(2026, 6, 1), DATA_END)),
    ]
    cid = itertools.count(base)
    for kind, count, (low, high), (start, end) in plan:
        for _ in range(count):
            customer = CustomerRow(next(cid), "", rng.choice(owners), kind)
            customer.name = f"参考客户{customer.id % 1_000_000:03d}号"
            customers.append(customer)
            for _ in range(rng.randint(low, high)):
                if kind == "one_off" and rng.random() < 0.6:
                    # One unit of the cheapest product: many equal monetary values.
                    _, price, cost = products[product_ids[0]]
                    add_order(
                        customer.id,
                        _moment(rng, start, end),
                        [Line(product_ids[0], 1, price, cost)],
                    )
                else:
                    add_order(customer.id, _moment(rng, start, end))

    by_kind = {k: [c for c in customers if c.kind == k] for k, *_ in plan}
    edge: dict[str, int] = {}
    p0, gift = product_ids[0], product_ids[9]

    def one(pid: int, quantity: int = 1) -> list[Line]:
        _, price, cost = products[pid]
        return [Line(pid, quantity, price, cost)]

    # Window boundaries: start is inclusive, end (date_to + 1 day 00:00 Shanghai) exclusive.
    c = by_kind["stopped"][0]
    edge["at_window_start"] = c.id
    add_order(c.id, WIN_START, one(p0, 2))
    c = by_kind["stopped"][1]
    edge["just_before_window"] = c.id
    add_order(c.id, WIN_START - US, one(p0))
    c = by_kind["none"][0]
    edge["at_window_end"] = c.id
    add_order(c.id, WIN_END, one(p0))
    c = by_kind["none"][1]
    edge["just_before_window_end"] = c.id
    add_order(c.id, WIN_END - US, one(p0))
    # Spend 0 in the window (only the free gift): an RFM customer but no pyramid spend.
    c = by_kind["none"][2]
    edge["zero_spend"] = c.id
    add_order(c.id, local(2026, 3, 3, 9, 30), one(gift, 2))
    # First orders where the UTC month differs from the Shanghai month.
    c = by_kind["none"][3]
    edge["cohort_shanghai_april"] = c.id
    add_order(c.id, local(2026, 4, 1, 3, 0), one(p0))  # 2026-03-31 19:00 UTC
    add_order(c.id, local(2026, 6, 10, 12, 0), one(p0))
    c = by_kind["none"][4]
    edge["cohort_shanghai_may"] = c.id
    add_order(c.id, local(2026, 5, 1, 7, 59, 59), one(p0))  # 2026-04-30 23:59:59 UTC
    # Two orders at one instant: mean gap 0, never churn risk.
    c = by_kind["none"][5]
    edge["same_instant"] = c.id
    moment = local(2026, 2, 14, 14, 0)
    add_order(c.id, moment, one(p0))
    add_order(c.id, moment, one(p0, 2))
    # Orders after the pinned clock: retention ignores them.
    c = by_kind["none"][6]
    edge["only_future"] = c.id
    add_order(c.id, NOW + dt.timedelta(days=2), one(p0))
    c = by_kind["frequent"][0]
    edge["future_too"] = c.id
    add_order(c.id, NOW + dt.timedelta(hours=1), one(p0))
    # Deleted customers (with orders) are not counted anywhere.
    for c in by_kind["regular"][:3]:
        c.deleted = True
    edge["deleted"] = by_kind["regular"][0].id
    orders.sort(key=lambda o: o.id)
    return Ledger(products, customers, orders, edge)


async def insert_ledger(maker: async_sessionmaker[AsyncSession], ledger: Ledger) -> None:
    created = DATA_START - dt.timedelta(days=30)
    line_ids = itertools.count(min(ledger.products))
    async with maker() as session, session.begin():
        await session.execute(
            insert(Product.__table__),
            [
                {
                    "id": pid,
                    "name": name,
                    "unit_price_cents": price,
                    "unit_cost_cents": cost,
                    "category": "赠品" if not price else "软件",
                }
                for pid, (name, price, cost) in ledger.products.items()
            ],
        )
        await session.execute(
            insert(Customer.__table__),
            [
                {
                    "id": c.id,
                    "name": c.name,
                    "name_normalized": normalize_name(c.name),
                    "phones": [],
                    "owner_id": c.owner_id,
                    "created_at": created,
                    "deleted_at": created + dt.timedelta(days=400) if c.deleted else None,
                    "recycle_kind": "deleted" if c.deleted else None,
                }
                for c in ledger.customers
            ],
        )
        await session.execute(
            insert(Order.__table__),
            [
                {
                    "id": o.id,
                    "customer_id": o.customer_id,
                    "source": o.source,
                    "channel": "电商",
                    "ordered_at": o.ordered_at,
                    "amount_cents": o.amount_cents,
                    "cost_cents": o.cost_cents,
                }
                for o in ledger.orders
            ],
        )
        await session.execute(
            insert(OrderLine.__table__),
            [
                {
                    "id": next(line_ids),
                    "order_id": o.id,
                    "product_id": line.product_id,
                    "quantity": line.quantity,
                    "unit_price_cents": line.unit_price_cents,
                    "unit_cost_cents": line.unit_cost_cents,
                }
                for o in ledger.orders
                for line in o.lines
            ],
        )
