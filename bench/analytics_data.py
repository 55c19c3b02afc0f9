"""Dataset for bench/analytics.py: customers, tag history and an orders ledger at scale.

One deterministic generator (NumPy, seeded) builds every row as Polars frames in memory, and the
same frames are loaded into PostgreSQL and into SQLite, so both databases hold identical data
(ids included) and an analytics result computed on one must equal the other's. The schema is
created by Alembic (``upgrade head``); the small tables (roles, departments, users, tag groups,
tags, products) go in through SQLAlchemy, the large ones through ADBC bulk ingest (PostgreSQL:
binary COPY; SQLite: the driver's prepared INSERT in one transaction), with the tables' secondary
indexes (and, on PostgreSQL, foreign keys) dropped for the load and re-created afterwards, then
``VACUUM ANALYZE`` / ``ANALYZE``. A row in ``system_settings`` marks a finished load; a later run
with the same size and seed reuses the data.

What the data looks like (N customers; figures for N = 1,000,000):

* a sales centre with four regions, a manager each and ``reps`` reps (200) spread over them, and
  ``admin`` (role admin, data scope all) with the password ``ADMIN_PASSWORD``;
* customers created over the three years before ``NOW`` (more in recent months), ids in creation
  order, 70 % persons (gender, birth date) and 30 % companies; industry, source, level, province
  and city filled; owned by the reps; 1 % deleted (in the recycle bin);
* a hidden propensity per customer drives signing (about 20 % signed, ``signed_at`` days to
  months after ``created_at``), the final 客户意向 and 消费能力 tags and the order volume, and
  the 25–34 age band signs a little more often: the persona signal;
* tag history (customer_tags, ~8 rows per customer): five groups —
  年龄段 (exclusive, from the birth date: re-tagged on the birthday that crosses a band),
  客户意向 (exclusive, re-tagged 0–4 times over the customer's life), 消费能力 (exclusive,
  re-tagged now and then), 兴趣偏好 and 沟通偏好 (sets of tags, some removed later);
* an orders ledger: signed customers order from their signing day on, about one order per
  customer overall (~1,000,000), 1–5 lines each (~3,000,000) over 50 products in five
  categories, four channels; ids in time order as an append-only ledger has them.

Usage (loading only; bench/analytics.py calls ``ensure`` itself):

    .venv/bin/python bench/analytics_data.py --customers 100000          # both databases
    .venv/bin/python bench/analytics_data.py --only postgresql --reload  # drop and load again
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from alembic import command
from alembic.config import Config
from sqlalchemy import BigInteger, Integer, Table, bindparam, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import PROJECT_ROOT
from app.db import Base, create_engine, create_sessionmaker
from app.models import Department, Product, Tag, TagGroup
from app.models.org import SystemSetting, user_roles
from app.security import hash_password_sync
from app.services.demo import ensure_default_roles

POSTGRESQL_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/kehu_bench_analytics"
SQLITE_URL = "sqlite+aiosqlite:////tmp/kehu_bench_analytics.db"
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "bench-analytics-2026"  # noqa: S105  (a scratch database's login)
MARKER = "bench_analytics_dataset"
GENERATOR_VERSION = 1
SEED = 20261201

# The dataset's "today": everything happened before it.
NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
US = 1_000_000
DAY = 86_400 * US
YEAR = int(365.2425 * DAY)
NOW_US = int(NOW.timestamp()) * US
START_US = NOW_US - 3 * 365 * DAY

CITIES = ["杭州", "上海", "北京", "深圳", "广州", "成都", "南京", "苏州"]
CITIES += ["武汉", "西安", "宁波", "青岛", "厦门", "长沙", "重庆", "天津"]
PROVINCES = ["浙江", "上海", "北京", "广东", "广东", "四川", "江苏", "江苏"]
PROVINCES += ["湖北", "陕西", "浙江", "山东", "福建", "湖南", "重庆", "天津"]
CITY_WEIGHTS = [8, 12, 10, 9, 8, 6, 5, 6, 4, 3, 3, 3, 2, 3, 3, 3]
WORDS = list("华星恒瑞博达信远腾泰安盛宏鑫源丰嘉正德兴锦优联创科新智海云晨")
TRADES = ["科技", "贸易", "电子", "建材", "食品", "物流", "医药", "机械", "服装", "文化"]
SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗")
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏婷")
INDUSTRIES = ["制造业", "批发零售", "信息技术", "金融", "教育", "医疗健康", "餐饮"]
INDUSTRIES += ["房地产", "物流", "文化传媒"]
INDUSTRY_WEIGHTS = [18, 16, 12, 6, 8, 9, 10, 5, 8, 8]
SOURCES = ["电话营销", "展会", "转介绍", "官网", "地推", "小程序"]
SOURCE_WEIGHTS = [20, 10, 18, 22, 12, 18]
CHANNELS = ["门店", "电商", "直销", "代理"]
CHANNEL_WEIGHTS = [35, 40, 15, 10]
REGIONS = ["华东大区", "华南大区", "华北大区", "西南大区"]

# (group, exclusive, tags). The order of the groups is their position in the configuration.
TAG_GROUPS: list[tuple[str, bool, list[str]]] = [
    ("年龄段", True, ["18-24岁", "25-34岁", "35-44岁", "45-54岁", "55岁及以上"]),
    ("客户意向", True, ["高意向", "中意向", "低意向"]),
    ("消费能力", True, ["高消费", "中等消费", "价格敏感"]),
    ("兴趣偏好", False, ["户外运动", "美食", "旅行", "数码", "母婴", "健身", "阅读", "宠物"]),
    ("沟通偏好", False, ["电话", "微信", "邮件", "上门拜访"]),
]
AGE_BOUNDS = [25, 35, 45, 55]  # 年龄段: the ages at which a customer moves to the next band
INTEREST_WEIGHTS = [1.0, 1.6, 1.3, 1.1, 0.6, 0.9, 0.7, 0.8]
CONTACT_WEIGHTS = [1.0, 2.5, 0.5, 0.4]

PRODUCTS: dict[str, list[str]] = {
    "护肤": ["洁面乳", "爽肤水", "精华液", "面霜", "眼霜", "防晒霜", "面膜", "卸妆油", "乳液",
             "精华油"],
    "保健品": ["维生素C", "钙片", "鱼油", "蛋白粉", "益生菌", "叶黄素", "胶原蛋白", "复合维生素",
               "辅酶Q10", "褪黑素"],
    "家居": ["四件套", "乳胶枕", "蚕丝被", "毛巾套装", "香薰", "收纳箱", "保温杯", "餐具套装",
             "拖鞋", "地毯"],
    "数码配件": ["蓝牙耳机", "充电宝", "数据线", "手机壳", "智能手表", "移动硬盘", "键盘", "鼠标",
                 "音箱", "摄像头"],
    "食品": ["茶叶礼盒", "坚果礼包", "咖啡豆", "蜂蜜", "燕窝", "红酒", "月饼礼盒", "橄榄油",
             "大米", "牛奶"],
}  # fmt: skip

BIG_TABLES = ("customers", "customer_tags", "orders", "order_lines")


@dataclass
class Dataset:
    """Every generated row, as frames whose columns are named and typed like the tables'."""

    customers: int
    seed: int
    small: dict[str, list[dict[str, Any]]]  # table -> rows (SQLAlchemy Core inserts)
    big: dict[str, pl.DataFrame]  # table -> frame (ADBC ingest)

    @property
    def marker(self) -> str:
        counts = {name: frame.height for name, frame in self.big.items()}
        return json.dumps(
            {"customers": self.customers, "seed": self.seed, "version": GENERATOR_VERSION}
            | {"rows": counts},
            sort_keys=True,
        )


def marker_key(customers: int, seed: int) -> str:
    return json.dumps({"customers": customers, "seed": seed, "version": GENERATOR_VERSION})


# --- generation ---------------------------------------------------------------------------------


def _weights(values: Iterable[float]) -> np.ndarray:
    w = np.asarray(list(values), dtype=np.float64)
    return w / w.sum()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _chains(
    rng: np.random.Generator,
    start: np.ndarray,
    final: np.ndarray,
    n_tags: int,
    changes: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Spans of an exclusive group: customer i is tagged at ``start[i]`` and re-tagged
    ``changes[i]`` times at sorted uniform moments before NOW, each time with a different tag,
    ending with ``final[i]`` (open). Returns (customer index, tag index, added, removed; -1 =
    still on)."""
    segments = changes + 1
    total = int(segments.sum())
    owner = np.repeat(np.arange(len(start)), segments)
    first = np.cumsum(segments) - segments
    pos = np.arange(total) - first[owner]
    moment = start[owner] + (rng.random(total) * (NOW_US - start[owner])).astype(np.int64)
    moment[pos == 0] = start[owner][pos == 0]
    moment = moment[np.lexsort((moment, owner))]  # sorted within each customer
    last = pos == segments[owner] - 1
    removed = np.full(total, -1, dtype=np.int64)
    removed[:-1] = moment[1:]
    removed[last] = -1
    # tag_j = final - (sum of the steps after j), every step 1..n-1 so neighbours always differ
    step = rng.integers(1, n_tags, total)
    step[pos == 0] = 0
    run = np.cumsum(step)
    within = run - run[first][owner]
    after = within[np.nonzero(last)[0]][owner] - within
    tag = (final[owner] - after) % n_tags
    return owner, tag, moment, removed


def _sets(
    rng: np.random.Generator,
    start: np.ndarray,
    counts: np.ndarray,
    weights: list[float],
    removed_share: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A non-exclusive group: ``counts[i]`` distinct tags drawn by weight, each added some days
    after ``start[i]``; some removed later."""
    w = np.asarray(weights)
    keys = rng.random((len(start), len(w))) ** (1.0 / w)  # weighted sampling without replacement
    ranked = np.argsort(-keys, axis=1)
    take = np.arange(len(w))[None, :] < counts[:, None]
    owner, _ = np.nonzero(take)
    tag = ranked[take]
    room = NOW_US - start[owner]
    delay = np.minimum(rng.exponential(20 * DAY, len(owner)), 0.8 * room).astype(np.int64)
    added = start[owner] + delay
    gone = rng.random(len(owner)) < removed_share
    removed = np.where(
        gone, added + (rng.random(len(owner)) * (NOW_US - added)).astype(np.int64) + 1, -1
    )
    return owner, tag, added, removed


def _moment(values: np.ndarray) -> pl.Series:
    """Microseconds since the epoch -> an aware UTC datetime column (nulls where -1/missing)."""
    series = pl.Series(values.astype(np.int64)).cast(pl.Datetime("us", "UTC"))
    return series.scatter(np.nonzero(values < 0)[0], None)


def generate(customers: int, reps: int = 200, seed: int = SEED) -> Dataset:
    rng = np.random.default_rng(seed)
    n = customers
    span = NOW_US - START_US

    # --- organisation, tags, products (ids fixed, so both databases agree) ---
    password = hash_password_sync(ADMIN_PASSWORD)
    departments = [{"id": 1, "name": "销售中心", "path": "/1/", "parent_id": None}]
    departments += [
        {"id": 2 + i, "name": name, "path": f"/1/{2 + i}/", "parent_id": 1}
        for i, name in enumerate(REGIONS)
    ]
    user = {"password_hash": password, "is_active": True, "locale": "zh-CN"}
    user["timezone"] = "Asia/Shanghai"
    users = [
        {"id": 1, "username": ADMIN_USERNAME, "display_name": "系统管理员", "department_id": 1}
    ]
    users += [
        {"id": 2 + i, "username": f"mgr{i + 1}", "display_name": f"{region}经理",
         "department_id": 2 + i}
        for i, region in enumerate(REGIONS)
    ]  # fmt: skip
    first_rep = 2 + len(REGIONS)
    users += [
        {"id": first_rep + r, "username": f"rep{r + 1:03d}", "display_name": f"销售{r + 1:03d}",
         "department_id": 2 + r % len(REGIONS)}
        for r in range(reps)
    ]  # fmt: skip
    users = [u | user for u in users]
    tag_groups, tags = [], []
    for g, (name, exclusive, names) in enumerate(TAG_GROUPS):
        tag_groups.append({"id": g + 1, "name": name, "exclusive": exclusive, "position": g})
        for t, tag in enumerate(names):
            tags.append({"id": len(tags) + 1, "group_id": g + 1, "name": tag, "position": t})
    tag_base = {}  # group name -> id of its first tag
    for g, (name, _, _) in enumerate(TAG_GROUPS):
        tag_base[name] = min(t["id"] for t in tags if t["group_id"] == g + 1)
    products = []
    for category, names in PRODUCTS.items():
        for name in names:
            price = int(np.exp(rng.uniform(np.log(29), np.log(1999)))) * 100
            products.append(
                {"id": len(products) + 1, "name": name, "sku": f"SKU{len(products) + 1:04d}",
                 "category": category, "unit_price_cents": price,
                 "unit_cost_cents": int(price * rng.uniform(0.35, 0.7)) // 100 * 100,
                 "active": True}
            )  # fmt: skip
    small = {
        "departments": departments,
        "users": users,
        "tag_groups": tag_groups,
        "tags": tags,
        "products": products,
    }

    # --- customers ---
    created = np.sort(START_US + (span * np.sqrt(rng.random(n))).astype(np.int64))
    created += rng.integers(0, US, n)  # microseconds, as real clocks write them
    age_share = (NOW_US - created) / span
    person = rng.random(n) < 0.7
    age_now = 21 + 50 * rng.beta(2.0, 3.5, n)
    birth_day = (NOW_US - (age_now * YEAR).astype(np.int64)) // DAY  # days since the epoch
    birth_us = birth_day * DAY
    band_created = np.searchsorted(AGE_BOUNDS, (created - birth_us) / YEAR, side="right")
    band_now = np.searchsorted(AGE_BOUNDS, (NOW_US - birth_us) / YEAR, side="right")
    propensity = rng.standard_normal(n)
    level = rng.choice(4, n, p=[0.1, 0.3, 0.4, 0.2])  # A, B, C, none
    logit = -1.75 + 1.1 * propensity + 0.45 * (person & (band_now == 1)) + 0.3 * (level == 0)
    signed_at = created + ((1 + rng.exponential(45, n)) * DAY).astype(np.int64)
    signed = (rng.random(n) < _sigmoid(logit)) & (signed_at < NOW_US)
    signed_at = np.where(signed, signed_at, -1)
    owner = first_rep + rng.integers(0, reps, n)
    deleted = rng.random(n) < 0.01
    deleted_at = np.where(
        deleted, created + (rng.random(n) * (NOW_US - created)).astype(np.int64), -1
    )
    followed = rng.random(n) < 0.8
    last_follow_up = np.where(
        followed, created + (rng.random(n) * (NOW_US - created)).astype(np.int64), -1
    )
    updated = np.maximum.reduce([created, signed_at, deleted_at, last_follow_up])

    idx = pl.DataFrame(
        {
            "city": rng.choice(16, n, p=_weights(CITY_WEIGHTS)),
            "w1": rng.integers(0, len(WORDS), n),
            "w2": rng.integers(0, len(WORDS), n),
            "trade": rng.integers(0, len(TRADES), n),
            "surname": rng.integers(0, len(SURNAMES), n),
            "g1": rng.integers(0, len(GIVEN), n),
            "g2": np.where(rng.random(n) < 0.7, rng.integers(0, len(GIVEN), n), -1),
        }
    )

    def pick(words: list[str], column: str) -> pl.Expr:
        return pl.col(column).replace_strict(list(range(len(words))), words, default="")

    names = idx.select(
        pl.when(pl.Series(person))
        .then(pick(SURNAMES, "surname") + pick(GIVEN, "g1") + pick(GIVEN, "g2"))
        .otherwise(
            pick(CITIES, "city") + pick(WORDS, "w1") + pick(WORDS, "w2") + pick(TRADES, "trade")
        )
        .alias("bare"),
        pick(CITIES, "city").alias("city"),
        pick(PROVINCES, "city").alias("province"),
    )
    phone = 13_000_000_000 + rng.integers(0, 6_000_000_000, n)
    budget = np.where(rng.random(n) < 0.3, rng.integers(1, 50, n) * 10_000, -1)
    customers_frame = pl.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "name": names["bare"] + pl.Series(np.where(person, "", "有限公司")),
            "name_normalized": names["bare"],
            "kind": np.where(person, "person", "company"),
            "phones": '["' + pl.Series(phone).cast(pl.String) + '"]',
            "province": names["province"],
            "city": names["city"],
            "industry": np.asarray(INDUSTRIES)[rng.choice(10, n, p=_weights(INDUSTRY_WEIGHTS))],
            "source": np.asarray(SOURCES)[rng.choice(6, n, p=_weights(SOURCE_WEIGHTS))],
            "level": pl.Series(np.asarray(["A", "B", "C", ""])[level]).replace("", None),
            "gender": pl.Series(
                np.where(person, np.where(rng.random(n) < 0.52, "female", "male"), "")
            ).replace("", None),
            "birth_date": pl.Series(birth_day.astype(np.int32)).cast(pl.Date),
            "owner_id": owner,
            "owner_assigned_at": _moment(created),
            "created_by_id": owner,
            "deal_status": np.where(signed, "signed", "none"),
            "signed_at": _moment(signed_at),
            "last_follow_up_at": _moment(last_follow_up),
            "custom_fields": ('{"budget": ' + pl.Series(budget).cast(pl.String) + "}").scatter(
                np.nonzero(budget < 0)[0], "{}"
            ),
            "deleted_at": _moment(deleted_at),
            "deleted_by_id": pl.Series(np.where(deleted, owner, 0)).replace(0, None),
            "recycle_kind": pl.Series(np.where(deleted, "deleted", "")).replace("", None),
            "created_at": _moment(created),
            "updated_at": _moment(updated),
            "version": 1 + rng.integers(0, 4, n),
        }
    ).with_columns(
        pl.when(pl.col("kind") == "person").then(pl.col("birth_date")).alias("birth_date")
    )

    # --- tag history ---
    tag_start = created + np.minimum(rng.exponential(2 * DAY, n), 0.5 * (NOW_US - created)).astype(
        np.int64
    )
    parts = []

    def add(group: str, picked: np.ndarray, spans: tuple[np.ndarray, ...]) -> None:
        who, tag, added, removed = spans
        customer = picked[who]
        parts.append(
            pl.DataFrame(
                {
                    "customer_idx": customer,
                    "tag_id": tag + tag_base[group],
                    "added_at": added,
                    "removed_at": removed,
                }
            )
        )

    # 年龄段: the band at creation, re-tagged on the birthday that crosses into the next one.
    persons = np.nonzero(person)[0]
    crosses = band_now[persons] > band_created[persons]
    crossing = birth_us[persons] + np.asarray([*AGE_BOUNDS, 999])[band_created[persons]] * YEAR
    cross_at = np.maximum(crossing, tag_start[persons] + 1)
    who = np.concatenate([np.arange(len(persons)), np.nonzero(crosses)[0]])
    band = np.concatenate([band_created[persons], band_now[persons][crosses]])
    added = np.concatenate([tag_start[persons], cross_at[crosses]])
    removed = np.concatenate([np.where(crosses, cross_at, -1), np.full(int(crosses.sum()), -1)])
    add("年龄段", persons, (who, band, added, removed))

    everyone = np.arange(n)
    intent_score = propensity + 0.8 * rng.standard_normal(n)
    intent = np.where(intent_score > 0.7, 0, np.where(intent_score > -0.5, 1, 2))
    intent_changes = np.minimum(rng.poisson(4.5 * age_share), 5)
    add("客户意向", everyone, _chains(rng, tag_start, intent, 3, intent_changes))

    spend_score = 0.5 * propensity + rng.standard_normal(n)
    spend = np.where(spend_score > 0.9, 0, np.where(spend_score > -0.3, 1, 2))
    spend_changes = np.minimum(rng.poisson(1.0 * age_share), 3)
    add("消费能力", everyone, _chains(rng, tag_start, spend, 3, spend_changes))

    interests = rng.choice(5, n, p=[0.08, 0.25, 0.32, 0.22, 0.13])
    add("兴趣偏好", everyone, _sets(rng, tag_start, interests, INTEREST_WEIGHTS, 0.15))
    contact = rng.choice([1, 2], n, p=[0.75, 0.25])
    add("沟通偏好", everyone, _sets(rng, tag_start, contact, CONTACT_WEIGHTS, 0.1))

    spans = pl.concat(parts).sort("added_at", "customer_idx", "tag_id")
    tag_owner = pl.Series(owner)
    customer_tags = spans.select(
        pl.int_range(1, spans.height + 1).alias("id"),
        (pl.col("customer_idx") + 1).alias("customer_id"),
        pl.col("tag_id"),
        pl.col("added_at").cast(pl.Datetime("us", "UTC")),
        tag_owner.gather(spans["customer_idx"]).alias("added_by_id"),
        pl.when(pl.col("removed_at") >= 0)
        .then(pl.col("removed_at"))
        .cast(pl.Datetime("us", "UTC"))
        .alias("removed_at"),
        pl.when(pl.col("removed_at") >= 0)
        .then(tag_owner.gather(spans["customer_idx"]))
        .alias("removed_by_id"),
    )

    # --- orders ledger: signed customers buy from their signing day on ---
    buyers = np.nonzero(signed)[0]
    years = (NOW_US - signed_at[buyers]) / YEAR
    per_buyer = max(n / max(len(buyers), 1) - 1.0, 0.0)  # about one order per customer in all
    rate = per_buyer * years / max(years.mean(), 1e-9) * rng.gamma(2.0, 0.5, len(buyers))
    rate *= 1.0 + 0.6 * (spend[buyers] == 0) - 0.3 * (spend[buyers] == 2)
    count = 1 + rng.poisson(rate)
    buyer = np.repeat(buyers, count)
    first = np.cumsum(count) - count
    pos = np.arange(len(buyer)) - np.repeat(first, count)
    since = signed_at[buyer]
    ordered = since + (rng.random(len(buyer)) * (NOW_US - since)).astype(np.int64)
    ordered = np.where(pos == 0, since + rng.integers(0, 2 * 3600 * US, len(buyer)), ordered)
    ordered = np.minimum(ordered, NOW_US - 1)
    chrono = np.argsort(ordered, kind="stable")
    buyer, ordered = buyer[chrono], ordered[chrono]
    m = len(buyer)
    lines_per = 1 + rng.binomial(4, 0.5, m)
    line_order = np.repeat(np.arange(m), lines_per)
    popularity = _weights(1.0 / np.arange(1, len(products) + 1) ** 0.8)
    product = rng.permutation(len(products))[
        rng.choice(len(products), len(line_order), p=popularity)
    ]
    price = np.asarray([p["unit_price_cents"] for p in products])[product]
    price = np.where(rng.random(len(line_order)) < 0.15, price * 9 // 10, price)
    cost = np.asarray([p["unit_cost_cents"] for p in products])[product]
    quantity = rng.geometric(0.55, len(line_order))
    starts = np.cumsum(lines_per) - lines_per
    amount = np.add.reduceat(quantity * price, starts)
    order_cost = np.add.reduceat(quantity * cost, starts)
    ordered_col = _moment(ordered)
    orders = pl.DataFrame(
        {
            "id": np.arange(1, m + 1),
            "customer_id": buyer + 1,
            "source": "import",
            "channel": np.asarray(CHANNELS)[rng.choice(4, m, p=_weights(CHANNEL_WEIGHTS))],
            "ordered_at": ordered_col,
            "amount_cents": amount,
            "cost_cents": order_cost,
            "created_at": ordered_col,
        }
    )
    order_lines = pl.DataFrame(
        {
            "id": np.arange(1, len(line_order) + 1),
            "order_id": line_order + 1,
            "product_id": product + 1,
            "quantity": quantity,
            "unit_price_cents": price,
            "unit_cost_cents": cost,
        }
    )
    big = {
        "customers": customers_frame,
        "customer_tags": customer_tags,
        "orders": orders,
        "order_lines": order_lines,
    }
    return Dataset(customers, seed, small, big)


# --- loading --------------------------------------------------------------------------------------


def migrate(url: str) -> None:
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url
    cfg.attributes["configure_logging"] = False
    command.upgrade(cfg, "head")


def adbc_uri(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    return parsed.database or ""


def adbc_connect(url: str, **kwargs: Any) -> Any:
    if make_url(url).get_backend_name() == "postgresql":
        import adbc_driver_postgresql.dbapi as driver
    else:
        import adbc_driver_sqlite.dbapi as driver  # type: ignore[no-redef]
    return driver.connect(adbc_uri(url), **kwargs)


def _table(name: str) -> Table:
    return Base.metadata.tables[name]


def for_postgresql(name: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Integer columns as wide as the table's (binary COPY does not convert int8 to int4)."""
    table = _table(name)
    casts = []
    for column in frame.columns:
        kind = table.c[column].type
        if isinstance(kind, BigInteger):
            casts.append(pl.col(column).cast(pl.Int64))
        elif isinstance(kind, Integer):
            casts.append(pl.col(column).cast(pl.Int32))
    return frame.with_columns(casts)


def for_sqlite(frame: pl.DataFrame) -> pl.DataFrame:
    """As the app stores them on SQLite: naive UTC text timestamps, ISO dates, 0/1 booleans."""
    casts = []
    for column, kind in frame.schema.items():
        if isinstance(kind, pl.Datetime):
            casts.append(
                pl.col(column)
                .dt.convert_time_zone("UTC")
                .dt.replace_time_zone(None)
                .dt.strftime("%Y-%m-%d %H:%M:%S%.6f")
            )
        elif isinstance(kind, pl.Date):
            casts.append(pl.col(column).dt.strftime("%Y-%m-%d"))
        elif kind == pl.Boolean:
            casts.append(pl.col(column).cast(pl.Int64))
    return frame.with_columns(casts)


async def loaded_marker(url: str) -> str | None:
    """The finished-load marker of the database, or None (no database, no schema, no load)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            value = await conn.scalar(
                select(SystemSetting.value).where(SystemSetting.key == MARKER)
            )
    except Exception:  # missing database or table: not loaded
        value = None
    finally:
        await engine.dispose()
    return value


async def recreate(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        server = parsed.set(database="postgres").render_as_string(hide_password=False)
        engine = create_engine(server)
        async with engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(
                text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
            )
            await autocommit.execute(text(f'CREATE DATABASE "{parsed.database}"'))
        await engine.dispose()
    else:
        for suffix in ("", "-wal", "-shm", "-journal"):
            await asyncio.to_thread(Path(f"{parsed.database}{suffix}").unlink, missing_ok=True)


async def load_small(engine: AsyncEngine, data: Dataset) -> None:
    maker = create_sessionmaker(engine)
    async with maker() as session:
        roles = await ensure_default_roles(session)
        await session.commit()
        role_ids = {name: role.id for name, role in roles.items()}
    async with engine.begin() as conn:
        await conn.execute(insert(_table("departments")), data.small["departments"])
        await conn.execute(insert(_table("users")), data.small["users"])
        links = []
        for u in data.small["users"]:
            role = "admin" if u["id"] == 1 else "manager" if u["username"][:3] == "mgr" else None
            links.append({"user_id": u["id"], "role_id": role_ids[role or "sales_rep"]})
        await conn.execute(insert(user_roles), links)
        for u in data.small["users"]:
            if u["username"].startswith("mgr"):
                await conn.execute(
                    Department.__table__.update()
                    .where(Department.id == u["department_id"])
                    .values(manager_id=u["id"])
                )
        await conn.execute(insert(TagGroup.__table__), data.small["tag_groups"])
        await conn.execute(insert(Tag.__table__), data.small["tags"])
        await conn.execute(insert(Product.__table__), data.small["products"])


def _ingest_postgresql(url: str, data: Dataset) -> dict[str, float]:
    """Binary COPY of every big table; customers through a staging table (JSON text to jsonb)."""
    seconds = {}
    with adbc_connect(url) as conn, conn.cursor() as cursor:
        started = time.perf_counter()
        customers = data.big["customers"]
        cursor.adbc_ingest("bench_stage_customers", customers.to_arrow(), mode="replace")
        columns = ", ".join(customers.columns)
        values = ", ".join(
            f"{c}::jsonb" if c in ("phones", "custom_fields") else c for c in customers.columns
        )
        cursor.execute(
            f"INSERT INTO customers ({columns}) SELECT {values} "  # noqa: S608  (constant names)
            "FROM bench_stage_customers ORDER BY id"
        )
        cursor.execute("DROP TABLE bench_stage_customers")
        seconds["customers"] = time.perf_counter() - started
        for name in ("customer_tags", "orders", "order_lines"):
            started = time.perf_counter()
            cursor.adbc_ingest(name, for_postgresql(name, data.big[name]).to_arrow(), mode="append")
            seconds[name] = time.perf_counter() - started
        started = time.perf_counter()
        conn.commit()
        seconds["commit"] = time.perf_counter() - started
    return seconds


def _ingest_sqlite(url: str, data: Dataset) -> dict[str, float]:
    seconds = {}
    with adbc_connect(url, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute("PRAGMA synchronous=OFF")
        for name in BIG_TABLES:
            started = time.perf_counter()
            cursor.adbc_ingest(name, for_sqlite(data.big[name]).to_arrow(), mode="append")
            seconds[name] = time.perf_counter() - started
        started = time.perf_counter()
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        seconds["checkpoint"] = time.perf_counter() - started
    return seconds


async def _ddl(engine: AsyncEngine, statements: Iterable[str], autocommit: bool = False) -> None:
    async with engine.connect() as conn:
        if autocommit:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for statement in statements:
            await conn.execute(text(statement))
        if not autocommit:
            await conn.commit()


async def _postgresql_secondary(engine: AsyncEngine) -> tuple[list[str], list[str], list[str]]:
    """(drop, create-index, add-foreign-key) statements for the big tables' secondary indexes
    and foreign keys: dropped for the load, re-created (and so checked) after it."""
    tables = {"tables": list(BIG_TABLES)}
    async with engine.connect() as conn:
        indexes = (
            await conn.execute(
                text(
                    "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)"
                    " FROM pg_index i WHERE i.indrelid::regclass::text = ANY(:tables)"
                    " AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
                ),
                tables,
            )
        ).all()
        keys = (
            await conn.execute(
                text(
                    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
                    " FROM pg_constraint WHERE contype = 'f'"
                    " AND conrelid::regclass::text = ANY(:tables)"
                ),
                tables,
            )
        ).all()
    drop = [f"ALTER TABLE {t} DROP CONSTRAINT {c}" for t, c, _ in keys]
    drop += [f"DROP INDEX {name}" for name, _ in indexes]
    create = [definition for _, definition in indexes]
    add = [f"ALTER TABLE {t} ADD CONSTRAINT {c} {d}" for t, c, d in keys]
    return drop, create, add


async def _sqlite_secondary(engine: AsyncEngine) -> tuple[list[str], list[str]]:
    query = text(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        " AND tbl_name IN :tables"
    ).bindparams(bindparam("tables", expanding=True))
    async with engine.connect() as conn:
        indexes = (await conn.execute(query, {"tables": list(BIG_TABLES)})).all()
    return [f"DROP INDEX {name}" for name, _ in indexes], [sql for _, sql in indexes]


async def load(url: str, data: Dataset) -> dict[str, float]:
    """Recreate, migrate and fill the database; seconds per step."""
    steps: dict[str, float] = {}
    started = time.perf_counter()

    def lap(label: str) -> None:
        nonlocal started
        steps[label] = time.perf_counter() - started
        started = time.perf_counter()

    await recreate(url)
    await asyncio.to_thread(migrate, url)
    lap("create and migrate")
    engine = create_engine(url)
    await load_small(engine, data)
    postgresql = make_url(url).get_backend_name() == "postgresql"
    if postgresql:
        drop, create, add = await _postgresql_secondary(engine)
    else:
        drop, create = await _sqlite_secondary(engine)
        add = []
    await _ddl(engine, drop)
    await engine.dispose()  # SQLite: no other connection while the loader writes
    lap("small tables")
    ingest = _ingest_postgresql if postgresql else _ingest_sqlite
    tables = await asyncio.to_thread(ingest, url, data)
    lap("bulk ingest")
    print("  ingest: " + ", ".join(f"{k} {v:.1f} s" for k, v in tables.items()))
    engine = create_engine(url)
    if postgresql:
        await _ddl(engine, ["SET maintenance_work_mem = '1GB'", *create, *add])
        sequences = [
            f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT max(id) FROM {t}))"  # noqa: S608
            for t in ("departments", "users", "tag_groups", "tags", "products", *BIG_TABLES)
        ]
        await _ddl(engine, sequences)
        lap("indexes and foreign keys")
        await _ddl(engine, ["VACUUM ANALYZE"], autocommit=True)
    else:
        # A large page cache and in-memory temp files: index builds sort millions of entries.
        await _ddl(engine, ["PRAGMA cache_size = -1048576", "PRAGMA temp_store = MEMORY", *create])
        lap("indexes")
        await _ddl(engine, ["ANALYZE"])
    lap("VACUUM ANALYZE" if postgresql else "ANALYZE")
    async with engine.begin() as conn:
        await conn.execute(insert(SystemSetting.__table__), {"key": MARKER, "value": data.marker})
    await engine.dispose()
    return steps


async def ensure(
    urls: list[str], customers: int, reps: int = 200, seed: int = SEED, reload: bool = False
) -> dict[str, Any]:
    """Load each database unless it already holds this dataset; what each one holds."""
    key = json.loads(marker_key(customers, seed))
    data: Dataset | None = None
    out: dict[str, Any] = {}
    for url in urls:
        marker = None if reload else await loaded_marker(url)
        if marker is not None and {k: json.loads(marker).get(k) for k in key} == key:
            print(f"{make_url(url).get_backend_name()}: reusing the loaded dataset ({marker})")
            await asyncio.to_thread(migrate, url)  # migrations added since the load
            out[url] = json.loads(marker)
            continue
        if data is None:
            started = time.perf_counter()
            data = generate(customers, reps, seed)
            print(f"generated {data.marker} in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        steps = await load(url, data)
        total = time.perf_counter() - started
        detail = ", ".join(f"{k} {v:.1f} s" for k, v in steps.items())
        print(f"{make_url(url).get_backend_name()}: loaded in {total:.1f} s ({detail})")
        out[url] = json.loads(data.marker)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgresql-url", default=POSTGRESQL_URL)
    parser.add_argument("--sqlite-url", default=SQLITE_URL)
    parser.add_argument("--only", choices=["postgresql", "sqlite"])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--reload", action="store_true", help="drop and load even if loaded")
    args = parser.parse_args()
    urls = [u for kind, u in (("postgresql", args.postgresql_url), ("sqlite", args.sqlite_url))
            if args.only in (None, kind)]  # fmt: skip
    asyncio.run(ensure(urls, args.customers, args.reps, args.seed, args.reload))


if __name__ == "__main__":
    main()
