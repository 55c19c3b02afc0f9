"""Benchmark: the pool reclaim job against one hand-written UPDATE (PostgreSQL).

Each round drops and re-creates the scratch database, migrates it with Alembic and loads, set-based
in SQL, one department of reps (200 by default), one pool whose members are that department (rule:
no follow-up for 30 days, level A 60 days) and N customers owned round-robin by the reps, about 10 %
of them due (plus locked and deleted ones that must stay put). Then, on that same data, each
statement timed and followed by ``VACUUM ANALYZE customers`` and ``CHECKPOINT`` (so the next one
finds the heap as this one found it, dead versions gone and trailing pages truncated, and pays the
same full-page writes):

1. the same UPDATE written with the job's member subquery (pool_members joined to departments),
   rolled back: shows what that shape costs, and takes the indexes through one round of page
   splits so that the baseline and the job find them in the same state;
2. the baseline, a hand-written UPDATE: the job's selection (members as the users of the member
   department's subtree) and its customer changes in one statement, rolled back;
3. the real job, ``pools.reclaim_neglected_customers(maker, now=..., batch_size=B)``: it commits,
   writes ownership history, timeline events and notifications. Its statements are timed by
   phase (engine events), and its result is checked id for id against the UPDATE's selection.

Usage (the database ``kehu_bench_reclaim`` on the server is dropped and re-created every round):

    .venv/bin/python bench/reclaim.py                      # 1,000,000 customers, B = 2000, 10000
    .venv/bin/python bench/reclaim.py --customers 100000   # quick try
    .venv/bin/python bench/reclaim.py --customers 100000 --explain   # plans, no timings
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.config import PROJECT_ROOT
from app.db import create_engine, create_sessionmaker
from app.models import Customer
from app.services import pools

SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432"
DATABASE = "kehu_bench_reclaim"
# The job's clock: every round reclaims "as of" this moment, so all rounds see the same due set.
NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
DEFAULT_DAYS, LEVEL_A_DAYS = 30, 60

CITIES = ["杭州", "上海", "北京", "深圳", "广州", "成都", "南京", "苏州"]
CITIES += ["武汉", "西安", "宁波", "青岛", "厦门", "长沙", "重庆", "天津"]
PROVINCES = ["浙江", "上海", "北京", "广东", "广东", "四川", "江苏", "江苏"]
PROVINCES += ["湖北", "陕西", "浙江", "山东", "福建", "湖南", "重庆", "天津"]
WORDS = list("华星恒瑞博达信远腾泰安盛宏鑫源丰嘉正德兴锦优联创科新智海云晨")
TRADES = ["科技", "贸易", "电子", "建材", "食品", "物流", "医药", "机械", "服装", "文化"]
TRADES += ["餐饮", "网络"]
SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗")
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏婷")
SOURCES = ["电话营销", "展会", "转介绍", "官网", "地推"]
assert (len(CITIES), len(PROVINCES), len(WORDS), len(TRADES)) == (16, 16, 30, 12)
assert (len(SURNAMES), len(GIVEN), len(SOURCES)) == (20, 30, 5)

# Bucket b (0..999, a hash of the id) decides the customer's history relative to NOW:
#   b <  85  last follow-up 61-360 days ago, owner since before (a quarter: no assignment
#            date, the clock runs from created_at, 500+ days ago)                  -> due
#   b <  95  never followed up, owner for 61-260 days                              -> due
#   b < 110  last follow-up 35-54 days ago, owner for 100+ days       -> due unless level A
#   b < 130  last follow-up 40-139 days ago but owner only for 0-24 days           -> not due
#   else     followed up within the last 30 days                                  -> not due
# Every 500th customer is locked and every 1000th (offset 1) deleted: neither may be reclaimed.
LOAD_CUSTOMERS = """
INSERT INTO customers (
    name, name_normalized, kind, phones, province, city, address, lat, lng, industry, source,
    level, gender, owner_id, owner_assigned_at, created_by_id, deal_status, signed_at,
    last_follow_up_at, next_follow_up_at, custom_fields, deleted_at, deleted_by_id, recycle_kind,
    locked_at, locked_by_id, created_at, updated_at, version
)
SELECT
    CASE WHEN g.person THEN g.person_name ELSE g.company || '有限公司' END,
    CASE WHEN g.person THEN g.person_name ELSE g.company END,
    CASE WHEN g.person THEN 'person' ELSE 'company' END,
    jsonb_build_array(
        '1' || (3 + g.i % 7)::text || lpad(((g.i::bigint * 7919) % 1000000000)::text, 9, '0')
    ),
    (CAST(:provinces AS text[]))[1 + g.i % 16],
    (CAST(:cities AS text[]))[1 + g.i % 16],
    (CAST(:cities AS text[]))[1 + g.i % 16] || '市' || (CAST(:words AS text[]))[1 + g.x % 30]
        || '路' || (1 + g.x % 999)::text || '号',
    22 + (g.x % 1600) / 100.0,
    104 + (g.x % 1700) / 100.0,
    (CAST(:trades AS text[]))[1 + (g.i / 14400) % 12],
    (CAST(:sources AS text[]))[1 + g.x % 5],
    CASE WHEN g.lv < 2 THEN 'A' WHEN g.lv < 5 THEN 'B' WHEN g.lv < 9 THEN 'C' END,
    CASE WHEN g.person THEN (ARRAY['male', 'female'])[1 + g.i % 2] END,
    g.owner,
    t.assigned,
    g.owner,
    CASE WHEN g.x % 20 = 0 THEN 'signed' ELSE 'none' END,
    CASE WHEN g.x % 20 = 0 THEN t.created + interval '30 days' END,
    t.followed,
    CASE WHEN g.b >= 130 AND g.x % 3 = 0 THEN g.now + make_interval(days => g.x % 14) END,
    CASE WHEN g.x % 3 = 0 THEN jsonb_build_object('budget', (g.x % 50) * 10000)
        ELSE '{}'::jsonb END,
    CASE WHEN g.i % 1000 = 1 THEN g.now - interval '3 days' END,
    CASE WHEN g.i % 1000 = 1 THEN g.owner END,
    CASE WHEN g.i % 1000 = 1 THEN 'deleted' END,
    CASE WHEN g.i % 500 = 0 THEN g.now - interval '5 days' END,
    CASE WHEN g.i % 500 = 0 THEN g.owner END,
    t.created,
    greatest(t.created, t.assigned, t.followed),
    1 + g.x % 5
FROM (
    SELECT
        s.i,
        s.b,
        s.x,
        s.lv,
        CAST(:now AS timestamptz) AS now,
        :first_user + (s.i - 1) % :users AS owner,
        s.x % 10 = 7 AS person,
        (CAST(:cities AS text[]))[1 + s.i % 16] || (CAST(:words AS text[]))[1 + (s.i / 16) % 30]
            || (CAST(:words AS text[]))[1 + (s.i / 480) % 30]
            || (CAST(:trades AS text[]))[1 + (s.i / 14400) % 12] AS company,
        (CAST(:surnames AS text[]))[1 + s.i % 20] || (CAST(:given AS text[]))[1 + (s.i / 20) % 30]
            || (CAST(:given AS text[]))[1 + (s.i / 600) % 30] AS person_name
    FROM (
        SELECT
            i,
            (hashint4(i) & 2147483647) % 1000 AS b,
            (hashint4(i # 1431655765) & 2147483647) % 10000 AS x,
            (hashint4(i # 858993459) & 2147483647) % 10 AS lv
        FROM generate_series(1, :customers) AS i
    ) AS s
) AS g
CROSS JOIN LATERAL (
    SELECT
        g.now - make_interval(days => 500 + g.x % 1000) AS created,
        CASE
            WHEN g.b < 85 AND g.x % 4 = 0 THEN NULL
            WHEN g.b < 85 THEN g.now - make_interval(days => 90 + g.x % 300)
            WHEN g.b < 95 THEN g.now - make_interval(days => 61 + g.x % 200)
            WHEN g.b < 110 THEN g.now - make_interval(days => 100 + g.x % 300)
            WHEN g.b < 130 THEN g.now - make_interval(days => g.x % 25)
            ELSE g.now - make_interval(days => 100 + g.x % 300)
        END AS assigned,
        CASE
            WHEN g.b < 85 THEN g.now - make_interval(days => 61 + g.x % 300, secs => g.x)
            WHEN g.b < 95 THEN NULL
            WHEN g.b < 110 THEN g.now - make_interval(days => 35 + g.x % 20)
            WHEN g.b < 130 THEN g.now - make_interval(days => 40 + g.x % 100)
            ELSE g.now - make_interval(days => g.x % 30, secs => g.x % 3600)
        END AS followed
) AS t
ORDER BY g.i
"""

# The pool's members, two ways. As a hand-writer who knows the pool would: the users of the member
# department's subtree (the planner estimates 200 owners and walks the table once).
MEMBERS = """
    c.owner_id IN (
        SELECT u.id FROM users u JOIN departments d ON d.id = u.department_id
        WHERE d.path LIKE :path || '%'
    )
"""
# As the job writes it (``pools._pool_members_subquery``): member users, or users of member
# departments joined through pool_members; the planner estimates 2 owners for this UNION.
MEMBERS_AS_JOB = """
    c.owner_id IN (
        SELECT pm.user_id FROM pool_members pm
        WHERE pm.pool_id = :pool AND pm.role = 'member' AND pm.user_id IS NOT NULL
        UNION
        SELECT u.id FROM users u
        JOIN departments d ON d.id = u.department_id
        JOIN pool_members pm ON pm.pool_id = :pool AND pm.role = 'member'
        JOIN departments md ON md.id = pm.department_id
        WHERE d.path LIKE md.path || '%'
    )
"""
# The rest of the selection: live, unlocked; level A silent for 60 days, the others for 30.
RULES = """
    AND c.deleted_at IS NULL
    AND c.locked_at IS NULL
    AND (
        (c.level = 'A'
         AND coalesce(c.owner_assigned_at, c.created_at) < :cut_a
         AND (c.last_follow_up_at IS NULL OR c.last_follow_up_at < :cut_a))
        OR ((c.level IS NULL OR c.level <> 'A')
         AND coalesce(c.owner_assigned_at, c.created_at) < :cut_default
         AND (c.last_follow_up_at IS NULL OR c.last_follow_up_at < :cut_default))
    )
"""
DUE = MEMBERS + RULES
UNLOCKED, LIVE = "AND c.locked_at IS NULL", "AND c.deleted_at IS NULL"
REASON = """
    CASE
        WHEN c.level = 'A'
         AND coalesce(c.owner_assigned_at, c.created_at) < :cut_a
         AND (c.last_follow_up_at IS NULL OR c.last_follow_up_at < :cut_a) THEN :reason_a
        WHEN (c.level IS NULL OR c.level <> 'A')
         AND coalesce(c.owner_assigned_at, c.created_at) < :cut_default
         AND (c.last_follow_up_at IS NULL OR c.last_follow_up_at < :cut_default)
        THEN :reason_default
        ELSE 'reclaimed'
    END
"""
# The customer changes of ``pools._into_pool_values``, with the reason of the rule that applies.
SET = f"""
    previous_owner_id = c.owner_id,
    owner_id = NULL,
    owner_assigned_at = NULL,
    pool_id = :pool,
    pooled_at = :now,
    pool_reason = {REASON},
    locked_at = NULL,
    locked_by_id = NULL,
    reclaim_warned_due_at = NULL,
    updated_at = :now,
    version = c.version + 1
"""
HAND_UPDATE = f"UPDATE customers AS c SET {SET} WHERE {MEMBERS} {RULES}"  # noqa: S608
HAND_UPDATE_AS_JOB = f"UPDATE customers AS c SET {SET} WHERE {MEMBERS_AS_JOB} {RULES}"  # noqa: S608
EXPECTED = f"""
CREATE TABLE bench_expected AS
SELECT c.id, c.owner_id, {REASON} AS reason FROM customers AS c WHERE {DUE}
"""  # noqa: S608  (constant SQL, values are bound)
LOCKED = "CREATE TABLE bench_locked AS SELECT id FROM customers WHERE locked_at IS NOT NULL"


@dataclass
class Dataset:
    pool_id: int
    department_path: str
    customers: int
    load_seconds: float
    locked_due: int = 0  # locked customers that would be due if they were not locked
    deleted_due: int = 0


def hand_params(data: Dataset) -> dict[str, Any]:
    return {
        "pool": data.pool_id,
        "path": data.department_path,
        "now": NOW,
        "cut_a": NOW - dt.timedelta(days=LEVEL_A_DAYS),
        "cut_default": NOW - dt.timedelta(days=DEFAULT_DAYS),
        "reason_a": pools.rule_reason("no_follow_up", LEVEL_A_DAYS),
        "reason_default": pools.rule_reason("no_follow_up", DEFAULT_DAYS),
    }


# --- database and data ----------------------------------------------------------------------------


async def recreate_database(server: str, name: str) -> None:
    engine = create_engine(f"{server}/postgres")
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await autocommit.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()


def migrate(url: str) -> None:
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url
    cfg.attributes["configure_logging"] = False
    command.upgrade(cfg, "head")


async def maintenance(engine: AsyncEngine, *statements: str) -> None:
    """VACUUM, CHECKPOINT and the like: outside a transaction."""
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for statement in statements:
            await autocommit.execute(text(statement))


async def load(engine: AsyncEngine, customers: int, reps: int) -> Dataset:
    started = time.perf_counter()
    async with engine.begin() as conn:
        await conn.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
        dept = (
            await conn.execute(
                text("INSERT INTO departments (name, path) VALUES ('销售部', '/') RETURNING id")
            )
        ).scalar_one()
        await conn.execute(
            text("UPDATE departments SET path = '/' || id || '/' WHERE id = :d"), {"d": dept}
        )
        first_user = (
            await conn.execute(
                text(
                    "INSERT INTO users (username, display_name, password_hash, department_id,"
                    " is_active, locale, timezone)"
                    " SELECT 'rep' || lpad(g::text, 3, '0'), '销售' || g, '!', :d, true,"
                    " 'zh-CN', 'Asia/Shanghai' FROM generate_series(1, :reps) AS g"
                    " RETURNING id"
                ),
                {"d": dept, "reps": reps},
            )
        ).scalars()
        first = min(first_user)
        pool_id = (
            await conn.execute(
                text(
                    "INSERT INTO pools (name, description, enabled, exclude_signed,"
                    " exclude_open_opportunity, warning_days, cooling_days, hidden_fields)"
                    " VALUES ('华东公海', '', true, false, false, 3, 0, '[]') RETURNING id"
                )
            )
        ).scalar_one()
        await conn.execute(
            text(
                "INSERT INTO pool_rules (pool_id, kind, days, level_days)"
                " VALUES (:p, 'no_follow_up', :days, CAST(:levels AS jsonb))"
            ),
            {"p": pool_id, "days": DEFAULT_DAYS, "levels": f'{{"A": {LEVEL_A_DAYS}}}'},
        )
        await conn.execute(
            text(
                "INSERT INTO pool_members (pool_id, role, department_id) VALUES (:p, 'member', :d)"
            ),
            {"p": pool_id, "d": dept},
        )
        # Build the secondary indexes after the load (far faster than maintaining them row
        # by row); they are re-created from their own definitions, exactly as migrated.
        indexes = (
            await conn.execute(
                text(
                    "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)"
                    " FROM pg_index i WHERE i.indrelid = 'customers'::regclass"
                    " AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
                )
            )
        ).all()
        for index_name, _ in indexes:
            await conn.execute(text(f"DROP INDEX {index_name}"))
        await conn.execute(
            text(LOAD_CUSTOMERS),
            {
                "customers": customers,
                "users": reps,
                "first_user": first,
                "now": NOW,
                "cities": CITIES,
                "provinces": PROVINCES,
                "words": WORDS,
                "trades": TRADES,
                "surnames": SURNAMES,
                "given": GIVEN,
                "sources": SOURCES,
            },
        )
        for _, definition in indexes:
            await conn.execute(text(definition))
    await maintenance(engine, "VACUUM ANALYZE")
    async with engine.connect() as conn:
        data = Dataset(pool_id, f"/{dept}/", customers, time.perf_counter() - started)
        params = hand_params(data)
        count = "SELECT count(*) FROM customers c WHERE "
        locked_due = (
            await conn.execute(
                text(count + "c.locked_at IS NOT NULL AND " + DUE.replace(UNLOCKED, "")), params
            )
        ).scalar_one()
        deleted_due = (
            await conn.execute(
                text(count + "c.deleted_at IS NOT NULL AND " + DUE.replace(LIVE, "")), params
            )
        ).scalar_one()
    data.locked_due, data.deleted_due = locked_due, deleted_due
    return data


async def table_size(conn: AsyncConnection) -> tuple[int, int]:
    """(heap, heap + indexes) of customers in bytes."""
    row = (
        await conn.execute(
            text("SELECT pg_relation_size('customers'), pg_total_relation_size('customers')")
        )
    ).one()
    return int(row[0]), int(row[1])


# --- the job's statements, timed by phase --------------------------------------------------------


def phase_of(statement: str) -> str:
    head = " ".join(statement.split())[:80]
    if head.startswith("SELECT customers.id"):
        return "select due ids"
    if head.startswith("UPDATE customers"):
        return "batch UPDATE customers"
    if head.startswith("INSERT INTO customer_ownership_events"):
        return "INSERT ownership events"
    if head.startswith("INSERT INTO audit_events"):
        return "INSERT audit events"
    if head.startswith("INSERT INTO notifications"):
        return "INSERT notifications"
    return "other statements"


@dataclass
class Clock:
    """Wall time per phase of the job, from the engine's cursor events and its commits."""

    on: bool = False
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    updates: list[float] = field(default_factory=list)

    def attach(self, engine: AsyncEngine) -> None:
        sync = engine.sync_engine
        event.listen(sync, "before_cursor_execute", self._before)
        event.listen(sync, "after_cursor_execute", self._after)
        commit = sync.dialect.do_commit

        def timed_commit(dbapi_connection: Any) -> None:
            started = time.perf_counter()
            commit(dbapi_connection)
            self._add("COMMIT", time.perf_counter() - started)

        sync.dialect.do_commit = timed_commit  # type: ignore[method-assign]

    def reset(self) -> None:
        self.seconds.clear()
        self.counts.clear()
        self.updates.clear()

    def _add(self, phase: str, seconds: float) -> None:
        if self.on:
            self.seconds[phase] += seconds
            self.counts[phase] += 1

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def _after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        elapsed = time.perf_counter() - conn.info["bench_started"].pop()
        phase = phase_of(statement)
        self._add(phase, elapsed)
        if self.on and phase == "batch UPDATE customers":
            self.updates.append(elapsed)


# --- one round ------------------------------------------------------------------------------------


@dataclass
class Round:
    batch_size: int
    customers: int
    load_seconds: float
    update_seconds: float  # the hand-written UPDATE: the baseline
    update_rows: int
    update_as_job_seconds: float  # the same with the job's member subquery
    update_as_job_rows: int
    job_seconds: float
    job_rows: int
    phases: dict[str, float]
    counts: dict[str, int]
    batch_updates: list[float]
    sizes: dict[str, tuple[int, int]]
    checks: dict[str, int]

    @property
    def ratio(self) -> float:
        return self.job_seconds / self.update_seconds


async def timed_rollback(
    engine: AsyncEngine, sql: str, params: dict[str, Any]
) -> tuple[float, int]:
    """Run one statement in a transaction, roll it back; (seconds, rows)."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))  # connected before the clock starts
        await conn.rollback()
        started = time.perf_counter()
        result = await conn.execute(text(sql), params)
        elapsed = time.perf_counter() - started
        rows = result.rowcount
        await conn.rollback()
    return elapsed, rows


async def verify(engine: AsyncEngine, pool_id: int) -> dict[str, int]:
    """Did the job change exactly the expected customers, in the expected way, with history?"""
    queries = {
        "expected (selection of the hand-written UPDATE)": "SELECT count(*) FROM bench_expected",
        "in the pool now": "SELECT count(*) FROM customers WHERE pool_id = :pool",
        "expected but not reclaimed as expected": """
            SELECT count(*) FROM bench_expected e JOIN customers c ON c.id = e.id
            WHERE c.pool_id IS DISTINCT FROM :pool OR c.owner_id IS NOT NULL
               OR c.previous_owner_id IS DISTINCT FROM e.owner_id
               OR c.pool_reason IS DISTINCT FROM e.reason OR c.pooled_at <> :now""",
        "reclaimed but not expected": """
            SELECT count(*) FROM customers c WHERE c.pool_id = :pool
            AND NOT EXISTS (SELECT FROM bench_expected e WHERE e.id = c.id)""",
        "locked customers reclaimed": """
            SELECT count(*) FROM customers c JOIN bench_locked l ON l.id = c.id
            WHERE c.pool_id IS NOT NULL OR c.owner_id IS NULL""",
        "ownership events": (
            "SELECT count(*) FROM customer_ownership_events WHERE action = 'reclaimed'"
        ),
        "audit events": "SELECT count(*) FROM audit_events WHERE action = 'reclaimed'",
        "notifications": "SELECT count(*) FROM notifications WHERE kind = 'customers_reclaimed'",
        "owners notified": (
            "SELECT count(DISTINCT user_id) FROM notifications WHERE kind = 'customers_reclaimed'"
        ),
    }
    # Autovacuum may be off: without fresh statistics the checks below plan as if no customer
    # were in a pool (a nested loop over 100,000 rows: minutes).
    await maintenance(engine, "ANALYZE customers")
    out = {}
    async with engine.connect() as conn:
        for label, sql in queries.items():
            out[label] = (await conn.execute(text(sql), {"pool": pool_id, "now": NOW})).scalar_one()
    return out


async def run_round(
    server: str, name: str, customers: int, reps: int, batch_size: int, clock: Clock
) -> Round:
    url = f"{server}/{name}"
    await recreate_database(server, name)
    await asyncio.to_thread(migrate, url)
    engine = create_engine(url)
    clock.attach(engine)
    maker = create_sessionmaker(engine)
    data = await load(engine, customers, reps)
    params = hand_params(data)
    sizes: dict[str, tuple[int, int]] = {}
    async with engine.begin() as conn:
        await conn.execute(text(EXPECTED), params)
        await conn.execute(text("ALTER TABLE bench_expected ADD PRIMARY KEY (id)"))
        await conn.execute(text(LOCKED))
    settle = ("VACUUM ANALYZE customers", "CHECKPOINT")
    await maintenance(engine, "VACUUM ANALYZE bench_expected, bench_locked", *settle)

    # The UPDATE with the job's member subquery goes first: it also takes the indexes through
    # one round of page splits (rolled back, vacuumed), as the job will find them after the
    # baseline (in trials the first UPDATE after a fresh load paid up to ~20 % more).
    async with engine.connect() as conn:
        sizes["before the first UPDATE"] = await table_size(conn)
    as_job_seconds, as_job_rows = await timed_rollback(engine, HAND_UPDATE_AS_JOB, params)
    await maintenance(engine, *settle)
    async with engine.connect() as conn:
        sizes["before the baseline UPDATE"] = await table_size(conn)
    update_seconds, update_rows = await timed_rollback(engine, HAND_UPDATE, params)
    await maintenance(engine, *settle)
    async with engine.connect() as conn:
        sizes["before the job"] = await table_size(conn)

    clock.reset()
    clock.on = True
    started = time.perf_counter()
    job_rows = await pools.reclaim_neglected_customers(maker, now=NOW, batch_size=batch_size)
    job_seconds = time.perf_counter() - started
    clock.on = False

    checks = await verify(engine, data.pool_id)
    checks["locked customers that would otherwise be due"] = data.locked_due
    checks["deleted customers that would otherwise be due"] = data.deleted_due
    await engine.dispose()
    return Round(
        batch_size,
        customers,
        data.load_seconds,
        update_seconds,
        update_rows,
        as_job_seconds,
        as_job_rows,
        job_seconds,
        job_rows,
        dict(clock.seconds),
        dict(clock.counts),
        list(clock.updates),
        sizes,
        checks,
    )


def report_round(n: int, r: Round) -> None:
    mib = 1024 * 1024
    print(f"\n== round {n}: batch_size {r.batch_size}, {r.customers:,} customers ==")
    print(f"load (SQL, indexes built after, VACUUM ANALYZE): {r.load_seconds:.1f} s")
    for label, (heap, total) in r.sizes.items():
        print(f"customers {label}: heap {heap / mib:.0f} MiB, with indexes {total / mib:.0f} MiB")
    print(
        f"UPDATE with the job's member subquery (rolled back): {r.update_as_job_seconds:.2f} s, "
        f"{r.update_as_job_rows:,} rows"
    )
    print(f"hand-written UPDATE (rolled back): {r.update_seconds:.2f} s, {r.update_rows:,} rows")
    print(f"job: {r.job_seconds:.2f} s, {r.job_rows:,} reclaimed, job/UPDATE = {r.ratio:.2f}")
    accounted = sum(r.phases.values())
    for phase, seconds in sorted(r.phases.items(), key=lambda kv: -kv[1]):
        print(f"  {phase:<28} {seconds:7.2f} s  ({r.counts[phase]} statements)")
    print(f"  {'Python and the rest':<28} {r.job_seconds - accounted:7.2f} s")
    if r.batch_updates:
        ms = [s * 1000 for s in r.batch_updates]
        print(
            f"  batch UPDATEs: first {ms[0]:.0f} ms, median {statistics.median(ms):.0f} ms, "
            f"max {max(ms):.0f} ms, last {ms[-1]:.0f} ms"
        )
    for label, value in r.checks.items():
        print(f"  check: {label}: {value:,}")
    problems = []
    if not r.job_rows == r.update_rows == r.update_as_job_rows:
        problems.append(
            f"job reclaimed {r.job_rows}, the UPDATEs changed {r.update_rows} "
            f"and {r.update_as_job_rows}"
        )
    if r.checks["expected but not reclaimed as expected"] or r.checks["reclaimed but not expected"]:
        problems.append("the job's selection differs from the hand-written one")
    if r.checks["locked customers reclaimed"]:
        problems.append("locked customers were reclaimed")
    for label in ("ownership events", "audit events"):
        if r.checks[label] != r.job_rows:
            problems.append(f"{label}: {r.checks[label]} for {r.job_rows} customers")
    if problems:
        raise SystemExit("FAILED: " + "; ".join(problems))


# --- EXPLAIN ANALYZE of the job's statements -----------------------------------------------------


async def explain(
    server: str, name: str, customers: int, reps: int, batch_sizes: list[int]
) -> None:
    """Plans of both UPDATEs, the job's id selection and its first batch UPDATE (built as
    ``pools._reclaim_batch`` builds it), each ANALYZEd in a transaction that is rolled back."""
    url = f"{server}/{name}"
    await recreate_database(server, name)
    await asyncio.to_thread(migrate, url)
    engine = create_engine(url)
    maker = create_sessionmaker(engine)
    data = await load(engine, customers, reps)
    async with maker() as session:
        (rules,) = await pools.rule_sets(session)
    due, reason = pools.due_condition(rules, NOW)
    select_ids = select(Customer.id).where(due).order_by(Customer.id)
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]

    def sql(stmt: Any) -> str:
        return str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))

    async def show(title: str, statement: str, params: dict[str, Any] | None = None) -> None:
        async with engine.connect() as conn:
            plan = (
                await conn.execute(
                    text("EXPLAIN (ANALYZE, BUFFERS, WAL) " + statement), params or {}
                )
            ).scalars()
            await conn.rollback()
        await maintenance(engine, "VACUUM ANALYZE customers", "CHECKPOINT")
        print(f"\n-- {title}\n" + "\n".join(plan))

    await show("UPDATE with the job's member subquery", HAND_UPDATE_AS_JOB, hand_params(data))
    await show("hand-written UPDATE", HAND_UPDATE, hand_params(data))
    await show("job: select due ids", sql(select_ids))
    async with engine.connect() as conn:
        ids = list((await conn.execute(select_ids)).scalars())
    for size in batch_sizes:
        values = pools._into_pool_values(rules.pool_id, "", NOW)
        values["pool_reason"] = reason
        batch = (
            update(Customer)
            .where(Customer.id.in_(ids[:size]), due)
            .values(**values)
            .returning(Customer.id, Customer.previous_owner_id, Customer.pool_reason, Customer.name)
        )
        await show(f"job: first batch UPDATE, {size} ids", sql(batch))
    await engine.dispose()


# --- main -----------------------------------------------------------------------------------------


def summary(rounds: list[Round]) -> None:
    print(
        "\n| round | batch size | UPDATE, job's member subquery s | hand-written UPDATE s | job s "
        "| customers reclaimed | notifications | job / UPDATE |"
        "\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    for n, r in enumerate(rounds, 1):
        print(
            f"| {n} | {r.batch_size:,} | {r.update_as_job_seconds:.2f} | {r.update_seconds:.2f} "
            f"| {r.job_seconds:.2f} | {r.job_rows:,} | {r.checks['notifications']:,} "
            f"| {r.ratio:.2f} |"
        )
    phases = sorted({p for r in rounds for p in r.phases})
    print("\n| job phase | " + " | ".join(f"round {n} s" for n in range(1, len(rounds) + 1)) + " |")
    print("| --- |" + " ---: |" * len(rounds))
    for phase in phases:
        cells = " | ".join(f"{r.phases.get(phase, 0.0):.2f}" for r in rounds)
        print(f"| {phase} | {cells} |")
    rest = " | ".join(f"{r.job_seconds - sum(r.phases.values()):.2f}" for r in rounds)
    print(f"| Python and the rest | {rest} |")


async def main_async(args: argparse.Namespace) -> None:
    if args.explain:
        await explain(args.server, args.database, args.customers, args.reps, args.batch_sizes)
        return
    clock = Clock()
    rounds = []
    for _ in range(args.repeat):
        for size in args.batch_sizes:
            r = await run_round(args.server, args.database, args.customers, args.reps, size, clock)
            rounds.append(r)
            report_round(len(rounds), r)
    summary(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default=SERVER, help="PostgreSQL server URL, no database")
    parser.add_argument("--database", default=DATABASE, help="scratch database (dropped!)")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument(
        "--batch-sizes",
        type=lambda s: [int(v) for v in s.split(",")],
        default=[2000, 10000],
        help="comma-separated, e.g. 2000,10000",
    )
    parser.add_argument("--repeat", type=int, default=2, help="rounds per batch size")
    parser.add_argument("--explain", action="store_true", help="print plans instead of timing")
    args = parser.parse_args()
    if make_url(args.server).get_backend_name() != "postgresql":
        raise SystemExit("PostgreSQL only")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
