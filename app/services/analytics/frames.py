"""Bulk loading of the columns analytics needs, as Polars frames over Arrow, cached by data version.

Rows never pass through ORM objects: on PostgreSQL the ADBC driver (binary COPY through libpq)
hands Arrow record batches to Polars; on SQLite the interpreter's sqlite3 module reads the rows
straight into typed Polars columns (see ``_load_sqlite`` for why not ADBC there). A loaded
frame is kept in memory and reused until its table's *data version* moves: one cheap query of
index-backed maxima per request (``max(updated_at)`` of customers, ``max(id)`` of the append-only
ledgers, ``max(removed_at)`` of tag history). Concurrent requests for a frame that is not loaded yet
share one load. Frames hold every live row; callers apply the caller's data scope first
(``scoped``) before computing anything.

Loading and computing run in a small thread pool (``KEHU_ANALYTICS_WORKERS``) with Polars limited
to ``KEHU_ANALYTICS_THREADS`` threads, so a large computation never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import polars as pl
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from app.access import CustomerScope

T = TypeVar("T")
Kind = Literal["int", "float", "str", "datetime", "date", "bool"]

_POLARS_TYPES: Mapping[str, pl.DataType] = {
    "int": pl.Int64(),
    "float": pl.Float64(),
    "str": pl.String(),
    "datetime": pl.Datetime("us", "UTC"),
    "date": pl.Date(),
    "bool": pl.Boolean(),
}
# How sqlite3 hands each kind back: timestamps and dates as text (parsed by _typed).
_SQLITE_READ_TYPES: Mapping[str, pl.DataType] = {
    "int": pl.Int64(),
    "float": pl.Float64(),
    "str": pl.String(),
    "datetime": pl.String(),
    "date": pl.String(),
    "bool": pl.Boolean(),
}
CUSTOM_FIELD_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class FrameSpec:
    """A loadable frame: its SELECT, its typed columns, the data version that invalidates it."""

    name: str
    select: str
    columns: Mapping[str, Kind]
    # A SQL expression (over the frame's table) whose value changes whenever the rows change.
    version: str


_LIVE_CUSTOMERS = "FROM customers WHERE deleted_at IS NULL"
CUSTOMERS = FrameSpec(
    "customers",
    "SELECT id, name, kind, owner_id, pool_id, created_at, signed_at, deal_status, industry, "
    "level, source, province, city, gender, birth_date " + _LIVE_CUSTOMERS,
    {
        "id": "int",
        "name": "str",
        "kind": "str",
        "owner_id": "int",
        "pool_id": "int",
        "created_at": "datetime",
        "signed_at": "datetime",
        "deal_status": "str",
        "industry": "str",
        "level": "str",
        "source": "str",
        "province": "str",
        "city": "str",
        "gender": "str",
        "birth_date": "date",
    },
    "(SELECT max(updated_at) FROM customers)",
)
# Every tag span ever recorded (rows are never deleted): the tags as they were at any moment.
CUSTOMER_TAGS = FrameSpec(
    "customer_tags",
    "SELECT customer_id, tag_id, added_at, removed_at FROM customer_tags",
    {"customer_id": "int", "tag_id": "int", "added_at": "datetime", "removed_at": "datetime"},
    "(SELECT max(id) FROM customer_tags), (SELECT max(removed_at) FROM customer_tags), "
    "(SELECT max(deleted_at) FROM customers)",  # a merge moves the duplicate's tags
)
TAGS = FrameSpec(
    "tags",
    "SELECT tags.id AS tag_id, tags.name AS tag, tags.group_id, tag_groups.name AS tag_group "
    "FROM tags JOIN tag_groups ON tag_groups.id = tags.group_id",
    {"tag_id": "int", "tag": "str", "group_id": "int", "tag_group": "str"},
    "(SELECT max(updated_at) FROM tags), (SELECT max(updated_at) FROM tag_groups)",
)
ORDERS = FrameSpec(
    "orders",
    "SELECT id AS order_id, customer_id, ordered_at, amount_cents, cost_cents, channel FROM orders",
    {
        "order_id": "int",
        "customer_id": "int",
        "ordered_at": "datetime",
        "amount_cents": "int",
        "cost_cents": "int",
        "channel": "str",
    },
    # New orders raise max(id); merging customers moves orders to the survivor and soft-deletes
    # the merged one, which raises max(deleted_at) (an index) — orders are otherwise never edited.
    "(SELECT max(id) FROM orders), (SELECT max(deleted_at) FROM customers)",
)
ORDER_LINES = FrameSpec(
    "order_lines",
    "SELECT order_id, product_id, quantity, unit_price_cents, unit_cost_cents FROM order_lines",
    {
        "order_id": "int",
        "product_id": "int",
        "quantity": "int",
        "unit_price_cents": "int",
        "unit_cost_cents": "int",
    },
    "(SELECT max(id) FROM order_lines)",
)
PRODUCTS = FrameSpec(
    "products",
    "SELECT id AS product_id, name AS product, category FROM products",
    {"product_id": "int", "product": "str", "category": "str"},
    "(SELECT max(updated_at) FROM products)",
)
SPECS: Mapping[str, FrameSpec] = {
    s.name: s for s in (CUSTOMERS, CUSTOMER_TAGS, TAGS, ORDERS, ORDER_LINES, PRODUCTS)
}


def custom_field_spec(key: str, dialect: str) -> FrameSpec:
    """The text value of one custom field per live customer (select fields as dimensions)."""
    if not CUSTOM_FIELD_KEY.match(key):
        raise ValueError(f"not a custom field key: {key!r}")
    value = (
        f"custom_fields ->> '{key}'"
        if dialect == "postgresql"
        else f"CAST(json_extract(custom_fields, '$.{key}') AS TEXT)"
    )
    return FrameSpec(
        f"custom:{key}",
        f"SELECT id AS customer_id, {value} AS value " + _LIVE_CUSTOMERS,
        {"customer_id": "int", "value": "str"},
        CUSTOMERS.version,
    )


@dataclass
class _Entry:
    version: tuple[Any, ...]
    loaded_at: float
    frame: pl.DataFrame


@dataclass
class AnalyticsStore:
    """Loaded frames for one database, the worker pool that loads and computes, and the cache."""

    database_url: str
    workers: int = 1
    # A frame younger than this is reused without checking its version (bounded staleness).
    refresh_seconds: float = 0.0
    _executor: ThreadPoolExecutor = field(init=False)
    _loader: ThreadPoolExecutor = field(init=False)
    _cache: dict[str, _Entry] = field(init=False, default_factory=dict)
    _loading: dict[tuple[str, tuple[Any, ...]], asyncio.Future[pl.DataFrame]] = field(
        init=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix="kehu-analytics"
        )
        # Frames load one at a time, apart from the computations: loading several at once was
        # no faster here (the database's COPY is the bottleneck) and took the CPU the API's own
        # queries need (bench/RESULTS.md: customer detail p95 52 ms -> 187 ms during a cold load).
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kehu-analytics-load")
        url = make_url(self.database_url)
        self.dialect = url.get_backend_name()
        if self.dialect == "postgresql":
            self._location = url.set(drivername="postgresql").render_as_string(hide_password=False)
        else:
            self._location = url.database or ""

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._loader.shutdown(wait=False, cancel_futures=True)
        self._cache.clear()

    def clear(self) -> None:
        """Forget every loaded frame. Data versions assume rows are only added, updated or
        soft-deleted; whoever empties tables wholesale (tests, a restore) clears the cache."""
        self._cache.clear()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a computation in the analytics pool (never on the event loop)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def spec(self, name: str) -> FrameSpec:
        if name.startswith("custom:"):
            return custom_field_spec(name.removeprefix("custom:"), self.dialect)
        return SPECS[name]

    async def frames(self, session: AsyncSession, names: Sequence[str]) -> dict[str, pl.DataFrame]:
        """The named frames at their current data version (loading those that moved)."""
        specs = [self.spec(n) for n in dict.fromkeys(names)]
        now = time.monotonic()
        fresh = {
            s.name: e.frame
            for s in specs
            if (e := self._cache.get(s.name)) is not None
            and now - e.loaded_at < self.refresh_seconds
        }
        stale = [s for s in specs if s.name not in fresh]
        if stale:
            versions = await self._versions(session, stale)
            loaded = await asyncio.gather(*(self._frame(s, versions[s.name]) for s in stale))
            fresh.update(zip((s.name for s in stale), loaded, strict=True))
        return fresh

    async def _versions(
        self, session: AsyncSession, specs: Sequence[FrameSpec]
    ) -> dict[str, tuple[Any, ...]]:
        parts = [s.version for s in specs]
        row = (await session.execute(text("SELECT " + ", ".join(parts)))).one()
        values = list(row)
        result: dict[str, tuple[Any, ...]] = {}
        for spec, part in zip(specs, parts, strict=True):
            width = part.count("SELECT")
            result[spec.name] = tuple(str(v) for v in values[:width])
            values = values[width:]
        return result

    async def _frame(self, spec: FrameSpec, version: tuple[Any, ...]) -> pl.DataFrame:
        entry = self._cache.get(spec.name)
        if entry is not None and entry.version == version:
            entry.loaded_at = time.monotonic()
            return entry.frame
        key = (spec.name, version)
        pending = self._loading.get(key)
        if pending is None:
            loop = asyncio.get_running_loop()
            pending = asyncio.ensure_future(loop.run_in_executor(self._loader, self._load, spec))
            self._loading[key] = pending
            try:
                frame = await pending
                self._cache[spec.name] = _Entry(version, time.monotonic(), frame)
            finally:
                self._loading.pop(key, None)
            return frame
        return await asyncio.shield(pending)

    def prepare(self) -> None:
        """Import the database driver (pyarrow with it: seconds) before the first request."""
        if self.dialect == "postgresql":
            import adbc_driver_postgresql.dbapi  # noqa: F401

    def _load(self, spec: FrameSpec) -> pl.DataFrame:
        """Read the frame (in a loader thread) and give every column its type."""
        if self.dialect == "postgresql":
            frame = self._load_postgresql(spec)
        else:
            frame = self._load_sqlite(spec)
        return frame.select(_typed(frame, name, kind) for name, kind in spec.columns.items())

    def _load_postgresql(self, spec: FrameSpec) -> pl.DataFrame:
        """ADBC: PostgreSQL's binary COPY straight into Arrow."""
        import adbc_driver_postgresql.dbapi as driver

        with driver.connect(self._location) as conn, conn.cursor() as cursor:
            cursor.execute(spec.select)
            frame = pl.from_arrow(cursor.fetch_arrow_table())
        assert isinstance(frame, pl.DataFrame)
        return frame

    def _load_sqlite(self, spec: FrameSpec) -> pl.DataFrame:
        """SQLite through the interpreter's own sqlite3 module, straight into columns.

        Not ADBC: its driver links a second copy of the SQLite library into the process, and
        two copies in one process do not see each other's POSIX locks — reads miss the app's
        recent WAL commits, and closing one copy's file descriptor drops the other's locks
        ("How To Corrupt An SQLite Database File", 2.2.1).
        """
        location = Path(self._location).resolve().as_uri() + "?mode=ro"
        conn = sqlite3.connect(location, uri=True, check_same_thread=False)
        try:
            cursor = conn.execute(spec.select)
            names = [d[0] for d in cursor.description]
            schema = {name: _SQLITE_READ_TYPES[spec.columns[name]] for name in names}
            frame = pl.DataFrame(cursor.fetchall(), schema=schema, orient="row")
        finally:
            conn.close()
        return frame


def _typed(frame: pl.DataFrame, name: str, kind: Kind) -> pl.Expr:
    column = pl.col(name)
    target = _POLARS_TYPES[kind]
    if frame.schema[name] == pl.String() and kind in ("datetime", "date"):
        # SQLite keeps timestamps as naive UTC text ("2026-11-23 08:00:00.000000") and dates
        # as "2026-11-23".
        if kind == "date":
            return column.str.to_date("%Y-%m-%d", strict=False).alias(name)
        return (
            column.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us", strict=False)
            .dt.replace_time_zone("UTC")
            .alias(name)
        )
    if kind == "datetime" and isinstance(frame.schema[name], pl.Datetime):
        dtype = frame.schema[name]
        if getattr(dtype, "time_zone", None) is None:
            return column.dt.replace_time_zone("UTC").dt.cast_time_unit("us").alias(name)
        return column.dt.convert_time_zone("UTC").dt.cast_time_unit("us").alias(name)
    return column.cast(target, strict=False).alias(name)


def scoped(customers: pl.DataFrame, scope: CustomerScope) -> pl.DataFrame:
    """The customers the caller may read (``access.customer_scope``): always the first step."""
    if scope.owner_ids is None:
        return customers
    condition = pl.col("owner_id").is_in(sorted(scope.owner_ids))
    if scope.team_ids:
        condition = condition | pl.col("id").is_in(sorted(scope.team_ids))
    if scope.pool_ids:
        condition = condition | pl.col("pool_id").is_in(sorted(scope.pool_ids))
    return customers.filter(condition)


def of_customers(frame: pl.DataFrame, customers: pl.DataFrame) -> pl.DataFrame:
    """Rows of ``frame`` (with a ``customer_id``) that belong to ``customers`` (already scoped)."""
    return frame.join(
        customers.select(pl.col("id").alias("customer_id")), on="customer_id", how="semi"
    )
