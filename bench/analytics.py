"""Benchmark: the analytics endpoints (persona, RFM), against DuckDB and SQL.

The data comes from bench/analytics_data.py: the same generated rows in PostgreSQL and in SQLite
(1,000,000 customers, ~8,000,000 tag history rows, ~1,000,000 orders with ~3,000,000 lines),
loaded once and reused by later runs. Then, per database:

1. **The endpoints**, in a fresh child process (so that its peak RSS is the app's alone), the real
   app in-process (httpx ``ASGITransport``), logged in as ``admin`` (data scope all):
   ``GET /api/v1/analytics/persona?dimension=tag_group:<客户意向>&cohort_a=created&cohort_b=signed``
   over a one-year window, *cold* on the first start (the first call after the app starts with
   an empty snapshot directory: it reads whole tables from the database) and *cold* on a later
   start (a new app maps the frames the first one left on disk and catches up), and *warm*
   (repeat calls, median); the persona by ``industry`` warm; ``GET /api/v1/analytics/rfm``
   cold (a fresh app, without and with the snapshots) and warm; and the persona after 1,000
   customers were edited meanwhile (the frames catch up: the changed rows are re-read). The
   app runs with its default settings, so warm calls within ``KEHU_ANALYTICS_REFRESH_SECONDS``
   (30 s) skip the data-version query; an app with ``analytics_refresh_seconds=0`` measures
   warm calls that check it, and the catch-up.
   Memory: the process's RSS and its high-water mark (``VmHWM``, reset through
   ``/proc/self/clear_refs`` between phases; ``ru_maxrss`` for the whole child) — tracemalloc
   cannot see Arrow buffers.
2. **Responsiveness during a cold persona**: a fresh app, the persona request started as a task,
   and meanwhile ``GET /api/v1/customers/{id}`` (random live ids) one after another as fast as
   they return; p50 / p95 / max of those, against the same requests with nothing else running.
3. **DuckDB**: the columns the persona needs are read once into Arrow through ADBC
   (``fetch_arrow_table``), registered in DuckDB, and the same persona, the endpoint's tag cloud
   and the RFM grid computed in one SQL statement each; only the queries are timed (warm,
   median). The same after a copy into DuckDB's own tables.
4. **Plain SQL** in the database itself: the same statements as GROUP BYs (median); on
   PostgreSQL also with ``jit = off`` and ``work_mem = 256MB``.

The persona computed, by all three (and checked to agree number for number): window
[date_from 00:00, date_to + 1 day 00:00) in Asia/Shanghai as UTC instants; live customers;
cohort a = created in the window, cohort b = signed in the window; a customer's buckets are the
tags of the group it carried at the window's end (``added_at < end`` and ``removed_at`` null or
``>= end``), one row per tag, the bucket null without any; per bucket and cohort the distinct
customers, share = count / cohort size, revenue = their orders' ``amount_cents`` in the window,
conversion = the part with ``signed_at < end``. RFM: the quintile grid (R, F) of the customers
who ordered in the window, counts and revenue per cell, as the endpoint defines it.

Usage:

    .venv/bin/python bench/analytics.py                         # 1,000,000 customers, both
    .venv/bin/python bench/analytics.py --customers 100000      # a quick try
    .venv/bin/python bench/analytics.py --only postgresql --repeat 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import random
import re
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from httpx import ASGITransport, AsyncClient
from sqlalchemy import select, text, update
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db import create_engine
from app.main import create_app
from app.models import Customer, TagGroup
from app.models.base import utcnow

if TYPE_CHECKING:  # imported where used: the endpoints' child process imports what the app does
    import duckdb
    import pyarrow as pa

TZ = "Asia/Shanghai"
PERSONA_GROUP = "客户意向"
# The persona window ends half a year before the data does: the tag history after its end (tags
# removed and added later) must not count.
PERSONA_WINDOW = (dt.date(2025, 6, 1), dt.date(2026, 5, 31))
RFM_WINDOW = (dt.date(2025, 12, 1), dt.date(2026, 11, 30))
TARGET_WARM_MS = 300.0
TARGET_WARM_RATIO = 1.5
TARGET_COLD_S = 3.0
TARGET_DETAIL_P95_MS = 100.0
# Customers edited between two persona requests (the catch-up figure).
EDITED = 1000


def instants(window: tuple[dt.date, dt.date]) -> tuple[dt.datetime, dt.datetime]:
    """[date_from 00:00, date_to + 1 day 00:00) in the business time zone, as UTC instants."""
    zone = ZoneInfo(TZ)
    start = dt.datetime.combine(window[0], dt.time(), tzinfo=zone).astimezone(dt.UTC)
    end = dt.datetime.combine(window[1] + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return start, end.astimezone(dt.UTC)


# --- the persona and the RFM grid in SQL (PostgreSQL, SQLite, DuckDB) ----------------------------

# One row per (cohort, bucket) and one per cohort (total = 1, bucket null): customers, converted
# (signed before the window's end), revenue (orders in the window).
MEMBERS = """
members AS (
    SELECT 'a' AS cohort, id, CASE WHEN signed_at < :end THEN 1 ELSE 0 END AS converted
    FROM customers WHERE deleted_at IS NULL AND created_at >= :start AND created_at < :end
    UNION ALL
    SELECT 'b', id, CASE WHEN signed_at < :end THEN 1 ELSE 0 END
    FROM customers WHERE deleted_at IS NULL AND signed_at >= :start AND signed_at < :end
)"""
PERSONA_SQL = f"""
WITH {MEMBERS},
carried AS (
    SELECT DISTINCT ct.customer_id, t.name AS value
    FROM customer_tags ct JOIN tags t ON t.id = ct.tag_id
    WHERE t.group_id = :tag_group AND ct.added_at < :end
      AND (ct.removed_at IS NULL OR ct.removed_at >= :end)
),
revenue AS (
    SELECT customer_id, sum(amount_cents) AS revenue FROM orders
    WHERE ordered_at >= :start AND ordered_at < :end GROUP BY customer_id
)
SELECT m.cohort, 0 AS total, v.value, count(*) AS customers, sum(m.converted) AS converted,
       coalesce(sum(r.revenue), 0) AS revenue
FROM members m
LEFT JOIN carried v ON v.customer_id = m.id
LEFT JOIN revenue r ON r.customer_id = m.id
GROUP BY m.cohort, v.value
UNION ALL
SELECT m.cohort, 1, NULL, count(*), sum(m.converted), coalesce(sum(r.revenue), 0)
FROM members m LEFT JOIN revenue r ON r.customer_id = m.id
GROUP BY m.cohort
"""  # noqa: S608  (constant SQL, values are bound)
# The endpoint also returns a tag cloud: per cohort, every tag its customers carried at the
# window's end, with the number of customers. A customer carries a tag through at most one span
# at a moment, so count(*) counts distinct customers (3x faster than count(DISTINCT) in DuckDB;
# the check against the endpoint's distinct counts confirms it).
TAG_CLOUD_SQL = f"""
WITH {MEMBERS},
carried AS (
    SELECT customer_id, tag_id FROM customer_tags
    WHERE added_at < :end AND (removed_at IS NULL OR removed_at >= :end)
)
SELECT m.cohort, c.tag_id, count(*) AS customers
FROM members m JOIN carried c ON c.customer_id = m.id
GROUP BY m.cohort, c.tag_id
"""  # noqa: S608

# Quintile scores as the endpoint defines them: rank from worst to best, ties at their lowest
# rank, score = 1 + floor(5 (rank - 1) / n). {recency} and {div} differ between dialects.
RFM_SQL = """
WITH per AS (
    SELECT o.customer_id, max(o.ordered_at) AS last, count(*) AS frequency,
           sum(o.amount_cents) AS monetary
    FROM orders o JOIN customers c ON c.id = o.customer_id AND c.deleted_at IS NULL
    WHERE o.ordered_at >= :start AND o.ordered_at < :end
    GROUP BY o.customer_id
),
recency AS (SELECT customer_id, frequency, monetary, {recency} AS days FROM per),
scored AS (
    SELECT monetary,
           1 + (5 * (rank() OVER (ORDER BY days DESC) - 1)) {div} count(*) OVER () AS r,
           1 + (5 * (rank() OVER (ORDER BY frequency) - 1)) {div} count(*) OVER () AS f
    FROM recency
)
SELECT r, f, count(*) AS customers, sum(monetary) AS revenue FROM scored GROUP BY r, f
"""
RFM_POSTGRESQL = RFM_SQL.format(
    recency="floor(extract(epoch FROM (CAST(:end AS timestamptz) - last)) / 86400)", div="/"
)
RFM_DUCKDB = RFM_SQL.format(
    recency="(epoch_us(CAST(:end AS TIMESTAMPTZ)) - epoch_us(last)) // 86400000000", div="//"
)


def duckdb_sql(sql: str) -> str:
    """``:name`` parameters as DuckDB writes them (``$name``)."""
    return re.sub(r"(?<!:):([a-z_]+)", r"$\1", sql)


Persona = dict[tuple[str, str | None], tuple[int, int, int]]  # (cohort, bucket) -> counts
Sizes = dict[str, tuple[int, int]]  # cohort -> (size, revenue)


def persona_rows(rows: list[tuple[Any, ...]]) -> tuple[Sizes, Persona]:
    sizes: Sizes = {}
    buckets: Persona = {}
    for cohort, total, value, customers, converted, revenue in rows:
        if total:
            sizes[cohort] = (int(customers), int(revenue))
        else:
            buckets[(cohort, value)] = (int(customers), int(converted), int(revenue))
    return sizes, buckets


def persona_json(body: dict[str, Any]) -> tuple[Sizes, Persona, list[str]]:
    """The endpoint's answer as (sizes, buckets); shares and rates checked against the counts."""
    sizes = {c["key"]: (c["size"], c["revenue_cents"]) for c in body["cohorts"]}
    buckets: Persona = {}
    problems = []
    for bucket in body["buckets"]:
        for cohort in ("a", "b"):
            stats = bucket.get(cohort)
            if not stats or not stats["count"]:
                continue
            count = stats["count"]
            rate = stats["conversion_rate"]
            converted = round(rate * count) if rate is not None else 0
            if abs(stats["share"] - count / sizes[cohort][0]) > 1e-9:
                problems.append(f"{cohort}/{bucket['value']}: share {stats['share']} != count/size")
            if rate is not None and abs(rate - converted / count) > 1e-9:
                problems.append(f"{cohort}/{bucket['value']}: conversion rate {rate} not k/count")
            buckets[(cohort, bucket["value"])] = (count, converted, stats["revenue_cents"])
    return sizes, buckets, problems


def compare(label: str, ref: tuple[Sizes, Persona], got: tuple[Sizes, Persona]) -> list[str]:
    """Every difference of ``got`` from ``ref``, spelled out."""
    out = []
    for cohort in sorted(set(ref[0]) | set(got[0])):
        if ref[0].get(cohort) != got[0].get(cohort):
            out.append(
                f"{label}: cohort {cohort} (size, revenue) {got[0].get(cohort)} "
                f"!= {ref[0].get(cohort)}"
            )
    for key in sorted(set(ref[1]) | set(got[1]), key=lambda k: (k[0], str(k[1]))):
        if ref[1].get(key) != got[1].get(key):
            out.append(
                f"{label}: {key[0]}/{key[1]} (customers, converted, revenue) "
                f"{got[1].get(key)} != {ref[1].get(key)}"
            )
    return out


def show_persona(sizes: Sizes, buckets: Persona) -> None:
    print(f"  cohorts (size, revenue cents): {sizes}")
    for (cohort, value), (n, converted, revenue) in sorted(
        buckets.items(), key=lambda kv: (kv[0][0], -kv[1][0])
    ):
        share = n / sizes[cohort][0] if sizes[cohort][0] else 0
        print(
            f"  {cohort} {value!s:<6} {n:>8,} share {share:6.3f} "
            f"conversion {converted / n:6.3f} revenue {revenue / 100:>16,.2f}"
        )


# --- timing helpers ------------------------------------------------------------------------------


def ms(seconds: list[float]) -> list[float]:
    return [s * 1000 for s in seconds]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p * len(ordered)) - 1))]


def summary(values_ms: list[float]) -> str:
    return (
        f"median {statistics.median(values_ms):.1f} ms, p95 {pct(values_ms, 0.95):.1f}, "
        f"min {min(values_ms):.1f}, max {max(values_ms):.1f} (n={len(values_ms)})"
    )


def memory() -> dict[str, float]:
    """This process's RSS and RSS high-water mark (MiB) from /proc, and ru_maxrss."""
    status = Path("/proc/self/status").read_text()
    out = {}
    for key in ("VmRSS", "VmHWM"):
        match = re.search(rf"^{key}:\s+(\d+) kB", status, re.MULTILINE)
        out[key] = int(match.group(1)) / 1024 if match else float("nan")
    out["ru_maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


# --- 1 and 2: the endpoints, in a child process ---------------------------------------------------


def app_settings(url: str, **overrides: Any) -> Settings:
    return Settings(
        database_url=url,
        secret_key="b" * 48,
        spa_dir=Path("/none"),
        log_level="WARNING",
        scheduler_enabled=False,
        **({"analytics_cache_dir": None} | overrides),  # no snapshots unless asked for
    )


class Api:
    """One app instance, started (lifespan) and logged in as admin."""

    def __init__(self, url: str, login: tuple[str, str], **overrides: Any) -> None:
        self.login = login
        self.app = create_app(app_settings(url, **overrides))
        self.http = AsyncClient(transport=ASGITransport(app=self.app), base_url="http://bench")
        self.headers: dict[str, str] = {}

    async def __aenter__(self) -> Api:
        self._lifespan = self.app.router.lifespan_context(self.app)
        await self._lifespan.__aenter__()
        response = await self.http.post(
            "/api/v1/auth/token",
            data={"username": self.login[0], "password": self.login[1]},
        )
        assert response.status_code == 200, response.text[:300]
        self.headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        await self._lifespan.__aexit__(None, None, None)

    async def get(self, path: str, params: dict[str, Any] | None = None) -> tuple[float, Any]:
        started = time.perf_counter()
        response = await self.http.get(f"/api/v1{path}", params=params, headers=self.headers)
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, (path, response.status_code, response.text[:500])
        return elapsed, response.json()

    async def timed(self, path: str, params: dict[str, Any], n: int) -> list[float]:
        return [(await self.get(path, params))[0] for _ in range(n)]


def window_params(window: tuple[dt.date, dt.date]) -> dict[str, str]:
    return {"date_from": window[0].isoformat(), "date_to": window[1].isoformat()}


async def endpoints(url: str, repeat: int, hammer: bool, login: tuple[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    engine = create_engine(url)
    async with engine.connect() as conn:
        group = await conn.scalar(select(TagGroup.id).where(TagGroup.name == PERSONA_GROUP))
        n = await conn.scalar(select(Customer.id).order_by(Customer.id.desc()).limit(1))
        sample = random.Random(7).sample(range(1, n + 1), min(n, 5000))  # noqa: S311
        live = (
            await conn.scalars(
                select(Customer.id).where(Customer.id.in_(sample), Customer.deleted_at.is_(None))
            )
        ).all()
    await engine.dispose()
    persona = {
        "dimension": f"tag_group:{group}",
        "cohort_a": "created",
        "cohort_b": "signed",
        **window_params(PERSONA_WINDOW),
    }
    industry = persona | {"dimension": "industry"}
    rfm = window_params(RFM_WINDOW)
    out["persona_params"] = persona
    out["memory_idle"] = memory()

    # Frames kept on disk (the default, in a directory of this run's own): the first start
    # reads whole tables; a later start maps the snapshots and catches up.
    snapshots = Path(tempfile.mkdtemp(prefix="kehu-bench-frames-"))
    async with Api(url, login, analytics_cache_dir=snapshots) as api:
        out["memory_app_started"] = memory()
        reset_peak()
        seconds, body = await api.get("/analytics/persona", persona)
        out["persona_cold"] = seconds
        out["persona_body"] = body
        out["memory_after_cold"] = memory()
        reset_peak()
        out["persona_warm"] = await api.timed("/analytics/persona", persona, repeat)
        out["memory_after_warm"] = memory()
        out["industry_first"], out["industry_body"] = await api.get("/analytics/persona", industry)
        out["industry_warm"] = await api.timed("/analytics/persona", industry, repeat)
        out["rfm_first_frames_loaded"], _ = await api.get("/analytics/rfm", rfm)
        out["rfm_warm"] = await api.timed("/analytics/rfm", rfm, repeat)
        out["memory_after_all"] = memory()
    async with Api(url, login) as api:
        out["rfm_cold"], out["rfm_body"] = await api.get("/analytics/rfm", rfm)
    async with Api(url, login, analytics_cache_dir=snapshots) as api:
        out["rfm_cold_snapshot"], _ = await api.get("/analytics/rfm", rfm)
    async with Api(url, login, analytics_cache_dir=snapshots, analytics_refresh_seconds=0) as api:
        reset_peak()
        out["persona_cold_snapshot"], _ = await api.get("/analytics/persona", persona)
        out["memory_after_cold_snapshot"] = memory()
        out["persona_warm_refresh0"] = await api.timed("/analytics/persona", persona, repeat)
        # Reps at work meanwhile: customers edited (their rows, tags and orders are re-read).
        rng = random.Random(5)  # noqa: S311
        out["persona_catch_up"] = []
        for _ in range(5):
            await touch(url, rng.sample(list(live), min(len(live), EDITED)))
            out["persona_catch_up"].append((await api.get("/analytics/persona", persona))[0])
    shutil.rmtree(snapshots, ignore_errors=True)
    if hammer:
        out |= await responsiveness(url, login, persona, list(live))
    out["ru_maxrss"] = memory()["ru_maxrss"]
    return out


async def responsiveness(
    url: str, login: tuple[str, str], persona: dict[str, Any], ids: list[int]
) -> dict[str, Any]:
    """Customer detail latencies alone, then while a cold persona runs."""
    rng = random.Random(11)  # noqa: S311
    async with Api(url, login) as api:
        alone = [(await api.get(f"/customers/{rng.choice(ids)}"))[0] for _ in range(300)]
        task = asyncio.create_task(api.get("/analytics/persona", persona))
        during = []
        while not task.done():
            during.append((await api.get(f"/customers/{rng.choice(ids)}"))[0])
        cold, _ = await task
    return {"detail_alone": alone, "detail_during_cold": during, "persona_cold_hammered": cold}


async def touch(url: str, ids: list[int]) -> None:
    """Customers edited: ``updated_at`` moves (nothing the persona counts changes)."""
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(update(Customer).where(Customer.id.in_(ids)).values(updated_at=utcnow()))
    await engine.dispose()


def run_endpoints(url: str, repeat: int, hammer: bool, login: tuple[str, str]) -> dict[str, Any]:
    """Entry point of the child process."""
    return asyncio.run(endpoints(url, repeat, hammer, login))


def adbc_import_seconds(url: str) -> float:
    """In a fresh process with the app imported: what importing the ADBC DB-API module costs the
    first analytics request (``adbc_driver_manager.dbapi`` imports pyarrow.dataset and pandas)."""
    started = time.perf_counter()
    if make_url(url).get_backend_name() == "postgresql":
        import adbc_driver_postgresql.dbapi  # noqa: F401
    else:
        import adbc_driver_sqlite.dbapi  # noqa: F401
    return time.perf_counter() - started


def in_child(fn: Callable[..., Any], *args: Any) -> Any:
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


# --- 3 and 4: DuckDB and SQL ---------------------------------------------------------------------

ARROW_QUERIES = {
    "customers": "SELECT id, created_at, signed_at, deleted_at FROM customers "
    "WHERE deleted_at IS NULL",
    "customer_tags": "SELECT customer_id, tag_id, added_at, removed_at FROM customer_tags",
    "tags": "SELECT id, group_id, name FROM tags",
    "orders": "SELECT customer_id, ordered_at, amount_cents FROM orders",
}


def read_arrow(url: str) -> tuple[dict[str, pa.Table], float]:
    import analytics_data as data

    started = time.perf_counter()
    tables = {}
    with data.adbc_connect(url) as conn, conn.cursor() as cursor:
        for name, sql in ARROW_QUERIES.items():
            cursor.execute(sql)
            tables[name] = cursor.fetch_arrow_table()
    return tables, time.perf_counter() - started


def duck_timed(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any], n: int
) -> tuple[list[float], list[tuple[Any, ...]]]:
    rows: list[tuple[Any, ...]] = []
    con.execute(sql, params).fetchall()  # warm-up
    seconds = []
    for _ in range(n):
        started = time.perf_counter()
        rows = con.execute(sql, params).fetchall()
        seconds.append(time.perf_counter() - started)
    return seconds, rows


def duck(tables: dict[str, pa.Table], group: int, repeat: int) -> dict[str, Any]:
    import duckdb

    start, end = instants(PERSONA_WINDOW)
    rfm_start, rfm_end = instants(RFM_WINDOW)
    persona_params = {"start": start, "end": end, "tag_group": group}
    cloud_params = {"start": start, "end": end}
    rfm_params = {"start": rfm_start, "end": rfm_end}
    out: dict[str, Any] = {}
    con = duckdb.connect()
    for name, table in tables.items():
        con.register(name, table)
    persona, cloud, rfm = duckdb_sql(PERSONA_SQL), duckdb_sql(TAG_CLOUD_SQL), duckdb_sql(RFM_DUCKDB)
    out["persona"], out["persona_rows"] = duck_timed(con, persona, persona_params, repeat)
    out["cloud"], out["cloud_rows"] = duck_timed(con, cloud, cloud_params, repeat)
    out["rfm"], out["rfm_rows"] = duck_timed(con, rfm, rfm_params, repeat)
    con.close()
    # The same in DuckDB's own storage (copied from Arrow first).
    con = duckdb.connect()
    started = time.perf_counter()
    for name, table in tables.items():
        con.register(f"arrow_{name}", table)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM arrow_{name}")  # noqa: S608
    out["native_copy"] = time.perf_counter() - started
    out["native_persona"], _ = duck_timed(con, persona, persona_params, repeat)
    out["native_cloud"], _ = duck_timed(con, cloud, cloud_params, repeat)
    out["native_rfm"], _ = duck_timed(con, rfm, rfm_params, repeat)
    con.close()
    return out


def compare_cloud(rows: list[tuple[Any, ...]], body: dict[str, Any]) -> list[str]:
    ref = {(c, int(t)): int(n) for c, t, n in rows}
    got = {
        (cohort, entry["tag_id"]): entry["count"]
        for cohort, entries in (body.get("tag_cloud") or {}).items()
        for entry in entries or []
    }
    return [
        f"tag cloud {k[0]}/tag {k[1]}: endpoint {got.get(k)} != {ref.get(k)}"
        for k in sorted(set(ref) | set(got))
        if ref.get(k) != got.get(k)
    ]


def sql_param(url: str, moment: dt.datetime) -> Any:
    """A bound instant as the database compares it (SQLite: the app's naive UTC text)."""
    if make_url(url).get_backend_name() == "sqlite":
        return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return moment


# PostgreSQL as configured here plans the persona's joins of CTEs at ~800 million rows (no
# statistics on CTE columns) and JIT-compiles it for seconds; the tuned session is what a
# hand-written report would run with.
TUNED_SESSION = ("SET LOCAL jit = off", "SET LOCAL work_mem = '256MB'")


async def in_sql(url: str, group: int, repeat: int) -> dict[str, Any]:
    """The persona (and on PostgreSQL the RFM grid) as one SQL statement, timed."""
    postgresql = make_url(url).get_backend_name() == "postgresql"
    start, end = instants(PERSONA_WINDOW)
    rfm_start, rfm_end = instants(RFM_WINDOW)
    statements = {
        "persona": (
            PERSONA_SQL,
            {"start": sql_param(url, start), "end": sql_param(url, end), "tag_group": group},
        )
    }
    if postgresql:
        statements["rfm"] = (RFM_POSTGRESQL, {"start": rfm_start, "end": rfm_end})
    sessions = {"": ()}
    if postgresql:
        sessions["_tuned"] = TUNED_SESSION
    out: dict[str, Any] = {}
    engine = create_engine(url)
    async with engine.connect() as conn:
        for suffix, settings in sessions.items():
            for name, (sql, params) in statements.items():
                timings = []
                for _ in range(repeat):
                    for setting in settings:
                        await conn.execute(text(setting))
                    started = time.perf_counter()
                    rows = (await conn.execute(text(sql), params)).all()
                    timings.append(time.perf_counter() - started)
                    await conn.rollback()
                out[name + suffix] = timings
                out[f"{name}{suffix}_rows"] = [tuple(r) for r in rows]
    await engine.dispose()
    return out


async def tag_group_id(url: str) -> int:
    engine = create_engine(url)
    async with engine.connect() as conn:
        group = await conn.scalar(select(TagGroup.id).where(TagGroup.name == PERSONA_GROUP))
    await engine.dispose()
    assert group is not None
    return int(group)


def rfm_grid(rows: list[tuple[Any, ...]]) -> dict[tuple[int, int], tuple[int, int]]:
    return {(int(r), int(f)): (int(n), int(rev)) for r, f, n, rev in rows}


def rfm_json(body: dict[str, Any]) -> dict[tuple[int, int], tuple[int, int]]:
    return {(c["r"], c["f"]): (c["count"], c["revenue_cents"]) for c in body["grid"] if c["count"]}


# --- main -----------------------------------------------------------------------------------------


def check(label: str, mismatches: list[str], problems: list[str]) -> None:
    if mismatches:
        print(f"  MISMATCH {label}: {len(mismatches)} differences")
        for line in mismatches[:40]:
            print(f"    {line}")
        problems.extend(mismatches)
    else:
        print(f"  {label}: agree")


def report_endpoints(label: str, r: dict[str, Any]) -> None:
    started = r["memory_app_started"]
    cold, warm = r["memory_after_cold"], r["memory_after_warm"]
    print(f"\n== {label}: endpoints (child process) ==")
    print(f"persona {r['persona_params']}")
    print(f"persona cold: {r['persona_cold'] * 1000:.0f} ms")
    print(f"persona warm: {summary(ms(r['persona_warm']))}")
    print(f"persona by industry: first {r['industry_first'] * 1000:.0f} ms")
    print(f"persona by industry warm: {summary(ms(r['industry_warm']))}")
    print(f"rfm cold (fresh app): {r['rfm_cold'] * 1000:.0f} ms")
    print(f"rfm first after the persona: {r['rfm_first_frames_loaded'] * 1000:.0f} ms")
    print(f"rfm warm: {summary(ms(r['rfm_warm']))}")
    print(f"rfm cold, a new app with the snapshots: {r['rfm_cold_snapshot'] * 1000:.0f} ms")
    print(f"persona cold, a new app with the snapshots: {r['persona_cold_snapshot'] * 1000:.0f} ms")
    print(f"refresh 0, persona warm: {summary(ms(r['persona_warm_refresh0']))}")
    print(
        f"persona after {EDITED} customers were edited (catch-up): "
        f"{summary(ms(r['persona_catch_up']))}"
    )
    print(
        f"memory MiB: idle RSS {r['memory_idle']['VmRSS']:.0f}, app started {started['VmRSS']:.0f};"
        f" cold persona peak {cold['VmHWM']:.0f} (RSS after {cold['VmRSS']:.0f}); warm peak "
        f"{warm['VmHWM']:.0f} (RSS after {warm['VmRSS']:.0f}); after industry and RFM RSS "
        f"{r['memory_after_all']['VmRSS']:.0f}; ru_maxrss of the child {r['ru_maxrss']:.0f}"
    )
    if "detail_during_cold" in r:
        print(f"detail alone: {summary(ms(r['detail_alone']))}")
        print(
            f"detail during a cold persona ({r['persona_cold_hammered'] * 1000:.0f} ms): "
            f"{summary(ms(r['detail_during_cold']))}"
        )


def run_database(url: str, args: argparse.Namespace, reference: Any) -> dict[str, Any]:
    import analytics_data as data

    kind = make_url(url).get_backend_name()
    postgresql = kind == "postgresql"
    repeat = args.repeat if postgresql else args.sqlite_repeat
    problems: list[str] = []
    login = (data.ADMIN_USERNAME, data.ADMIN_PASSWORD)
    r = in_child(run_endpoints, url, repeat, postgresql or args.sqlite_hammer, login)
    r["adbc_import"] = in_child(adbc_import_seconds, url)
    report_endpoints(kind, r)
    print(f"importing the ADBC DB-API module in a fresh app process: {r['adbc_import']:.2f} s")
    group = asyncio.run(tag_group_id(url))
    result: dict[str, Any] = {"endpoints": r, "kind": kind}
    endpoint = persona_json(r["persona_body"])
    problems += endpoint[2]
    print("\nendpoint persona:")
    show_persona(endpoint[0], endpoint[1])

    if postgresql or args.sqlite_duckdb:
        import duckdb

        tables, seconds = read_arrow(url)
        rows = sum(t.num_rows for t in tables.values())
        print(f"\n== {kind}: DuckDB {duckdb.__version__} ==")
        print(f"read {rows:,} rows into Arrow through ADBC in {seconds:.2f} s")
        d = duck(tables, group, args.repeat)
        del tables
        print(f"persona over registered Arrow: {summary(ms(d['persona']))}")
        print(f"tag cloud over registered Arrow: {summary(ms(d['cloud']))}")
        print(f"rfm grid over registered Arrow: {summary(ms(d['rfm']))}")
        print(f"copy into DuckDB tables: {d['native_copy']:.2f} s")
        print(f"persona over DuckDB tables: {summary(ms(d['native_persona']))}")
        print(f"tag cloud over DuckDB tables: {summary(ms(d['native_cloud']))}")
        print(f"rfm grid over DuckDB tables: {summary(ms(d['native_rfm']))}")
        result["duckdb"] = d
        check("rfm grid: endpoint vs DuckDB", compare_grid(d["rfm_rows"], r["rfm_body"]), problems)
        cloud = compare_cloud(d["cloud_rows"], r["persona_body"])
        check("tag cloud: endpoint vs DuckDB", cloud, problems)
        if r["rfm_body"]["customers_with_orders"] != sum(n for _, _, n, _ in d["rfm_rows"]):
            problems.append("rfm customers_with_orders differs from DuckDB")

    sql_repeat = args.sql_repeat if postgresql else args.sqlite_sql_repeat
    s = asyncio.run(in_sql(url, group, sql_repeat))
    result["sql"] = s
    print(f"\n== {kind}: plain SQL ==")
    print(f"persona GROUP BY: {summary(ms(s['persona']))}")
    if postgresql:
        print(f"persona GROUP BY, jit off, work_mem 256MB: {summary(ms(s['persona_tuned']))}")
        print(f"rfm grid: {summary(ms(s['rfm']))}")
        print(f"rfm grid, jit off, work_mem 256MB: {summary(ms(s['rfm_tuned']))}")
        check("rfm grid: endpoint vs SQL", compare_grid(s["rfm_rows"], r["rfm_body"]), problems)
    sql_result = persona_rows(s["persona_rows"])
    reference = reference or sql_result
    print("\nchecks (the reference: PostgreSQL's SQL result, the same data in both databases):")
    check(
        f"persona: endpoint ({kind}) vs reference",
        compare("endpoint", reference, endpoint[:2]),
        problems,
    )
    check(f"persona: SQL ({kind}) vs reference", compare("sql", reference, sql_result), problems)
    if "duckdb" in result:
        duck_result = persona_rows(result["duckdb"]["persona_rows"])
        check("persona: DuckDB vs SQL", compare("duckdb", sql_result, duck_result), problems)
    result["problems"] = problems
    result["reference"] = reference
    return result


def compare_grid(rows: list[tuple[Any, ...]], body: dict[str, Any]) -> list[str]:
    ref, got = rfm_grid(rows), rfm_json(body)
    return [
        f"R{k[0]} F{k[1]} (customers, revenue) endpoint {got.get(k)} != {ref.get(k)}"
        for k in sorted(set(ref) | set(got))
        if ref.get(k) != got.get(k)
    ]


def p50_p95_max(seconds: list[float]) -> str:
    v = ms(seconds)
    return f"{statistics.median(v):.1f} / {pct(v, 0.95):.1f} / {max(v):.1f} (n={len(v)})"


def median_ms(seconds: list[float]) -> str:
    return f"{statistics.median(seconds) * 1000:.0f}"


def final_table(results: list[dict[str, Any]]) -> None:
    print("\n| figure | " + " | ".join(r["kind"] for r in results) + " |")
    print("| --- |" + " ---: |" * len(results))

    def row(label: str, fn: Callable[[dict[str, Any]], str]) -> None:
        cells = []
        for r in results:
            try:
                cells.append(fn(r))
            except KeyError:
                cells.append("—")
        print(f"| {label} | " + " | ".join(cells) + " |")

    def ratio(r: dict[str, Any], *parts: str) -> str:
        warm = statistics.median(r["endpoints"]["persona_warm"])
        return f"{warm / sum(statistics.median(r['duckdb'][p]) for p in parts):.2f}"

    e = "endpoints"
    row(
        "persona (tag group) cold, first start (tables read whole), ms",
        lambda r: f"{r[e]['persona_cold'] * 1000:.0f}",
    )
    row(
        "persona (tag group) cold, a new app with the snapshots, ms",
        lambda r: f"{r[e]['persona_cold_snapshot'] * 1000:.0f}",
    )
    row(
        f"persona after {EDITED:,} customers edited (catch-up), median ms",
        lambda r: median_ms(r[e]["persona_catch_up"]),
    )
    row(
        "of which importing the ADBC DB-API module, ms",
        lambda r: f"{r[e]['adbc_import'] * 1000:.0f}",
    )
    row("persona (tag group) warm, median ms", lambda r: median_ms(r[e]["persona_warm"]))
    row(
        "persona warm, data version checked on every call, median ms",
        lambda r: median_ms(r[e]["persona_warm_refresh0"]),
    )
    row("persona by industry warm, median ms", lambda r: median_ms(r[e]["industry_warm"]))
    row("DuckDB persona (registered Arrow), median ms", lambda r: median_ms(r["duckdb"]["persona"]))
    row(
        "DuckDB persona (own tables), median ms", lambda r: median_ms(r["duckdb"]["native_persona"])
    )
    row("DuckDB tag cloud (registered Arrow), median ms", lambda r: median_ms(r["duckdb"]["cloud"]))
    row("warm persona / DuckDB persona (Arrow)", lambda r: ratio(r, "persona"))
    row("warm persona / DuckDB persona + tag cloud (Arrow)", lambda r: ratio(r, "persona", "cloud"))
    row("SQL GROUP BY persona, median ms", lambda r: median_ms(r["sql"]["persona"]))
    row(
        "SQL GROUP BY persona, jit off + work_mem 256MB, median ms",
        lambda r: median_ms(r["sql"]["persona_tuned"]),
    )
    row("RFM cold (fresh app, no snapshot), ms", lambda r: f"{r[e]['rfm_cold'] * 1000:.0f}")
    row("RFM cold (new app, snapshots), ms", lambda r: f"{r[e]['rfm_cold_snapshot'] * 1000:.0f}")
    row("RFM warm, median ms", lambda r: median_ms(r[e]["rfm_warm"]))
    row("DuckDB RFM grid (Arrow), median ms", lambda r: median_ms(r["duckdb"]["rfm"]))
    row("SQL RFM grid, median ms", lambda r: median_ms(r["sql"]["rfm"]))
    row(
        "SQL RFM grid, jit off + work_mem 256MB, median ms",
        lambda r: median_ms(r["sql"]["rfm_tuned"]),
    )
    row("RSS app started, MiB", lambda r: f"{r[e]['memory_app_started']['VmRSS']:.0f}")
    row("RSS peak, cold persona, MiB", lambda r: f"{r[e]['memory_after_cold']['VmHWM']:.0f}")
    row(
        "RSS peak, cold persona from snapshots, MiB",
        lambda r: f"{r[e]['memory_after_cold_snapshot']['VmHWM']:.0f}",
    )
    row("RSS peak, warm persona, MiB", lambda r: f"{r[e]['memory_after_warm']['VmHWM']:.0f}")
    row("RSS after persona + RFM, MiB", lambda r: f"{r[e]['memory_after_all']['VmRSS']:.0f}")
    row("detail alone p50 / p95 / max ms", lambda r: p50_p95_max(r[e]["detail_alone"]))
    row(
        "detail during cold persona p50 / p95 / max ms",
        lambda r: p50_p95_max(r[e]["detail_during_cold"]),
    )
    row("cold persona while hammered, ms", lambda r: f"{r[e]['persona_cold_hammered'] * 1000:.0f}")
    row("numbers agree", lambda r: "yes" if not r["problems"] else f"NO ({len(r['problems'])})")


def main() -> None:
    import analytics_data as data

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgresql-url", default=data.POSTGRESQL_URL)
    parser.add_argument("--sqlite-url", default=data.SQLITE_URL)
    parser.add_argument("--only", choices=["postgresql", "sqlite"])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=data.SEED)
    parser.add_argument("--reload", action="store_true", help="drop and load the data again")
    parser.add_argument("--repeat", type=int, default=15, help="warm calls (PostgreSQL, DuckDB)")
    parser.add_argument("--sql-repeat", type=int, default=5, help="SQL GROUP BY runs (PostgreSQL)")
    parser.add_argument("--sqlite-repeat", type=int, default=10, help="warm calls on SQLite")
    parser.add_argument("--sqlite-sql-repeat", type=int, default=3)
    parser.add_argument("--sqlite-hammer", action="store_true", help="detail during cold, SQLite")
    parser.add_argument("--sqlite-duckdb", action="store_true", help="DuckDB over SQLite too")
    args = parser.parse_args()
    urls = [u for kind, u in (("postgresql", args.postgresql_url), ("sqlite", args.sqlite_url))
            if args.only in (None, kind)]  # fmt: skip
    asyncio.run(data.ensure(urls, args.customers, args.reps, args.seed, args.reload))
    print(f"load average at start: {os.getloadavg()}")
    results = []
    reference = None
    for url in urls:
        result = run_database(url, args, reference)
        reference = result["reference"]
        results.append(result)
    print(f"\nload average at the end: {os.getloadavg()}")
    final_table(results)
    problems = [p for r in results for p in r["problems"]]
    if problems:
        raise SystemExit(f"FAILED: {len(problems)} differences (see above)")


if __name__ == "__main__":
    main()
