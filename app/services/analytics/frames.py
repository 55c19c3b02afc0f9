"""Bulk loading of the columns analytics needs, as Polars frames over Arrow, cached by data version.

Rows never pass through ORM objects: on PostgreSQL the ADBC driver (binary COPY through libpq)
hands Arrow record batches to Polars; on SQLite the interpreter's sqlite3 module reads the rows
straight into typed Polars columns (see ``_read_sqlite`` for why not ADBC there). A loaded
frame is kept in memory and reused until its table's *data version* moves: one cheap query of
index-backed maxima per request (``max(updated_at)`` of customers, ``max(id)`` of the append-only
ledgers, ``max(removed_at)`` of tag history). When it moves, the large frames catch up by
reading only the rows changed since (``Changes``) instead of the whole table; they can also be
kept on disk between runs (``cache_dir``). Concurrent requests for a frame that is not loaded
yet share one load. Frames hold every live row; callers apply the caller's data scope first
(``scoped``) before computing anything.

Loading and computing run in small thread pools (``KEHU_ANALYTICS_WORKERS``) with Polars limited
to ``KEHU_ANALYTICS_THREADS`` threads, so a large computation never stalls the event loop.
"""

# The SQL here is built from this module's constants, validated custom field keys, and
# timestamps and integers formatted from typed values: nothing a caller writes reaches it.
# ruff: noqa: S608

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import logging
import math
import os
import re
import sqlite3
import threading
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
from app.models.base import utcnow

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
    "bool": pl.Int64(),  # 0 or 1
}
log = logging.getLogger(__name__)
CUSTOM_FIELD_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Changes:
    """How a loaded frame catches up by reading only the rows that may have changed.

    ``select`` reads the frame's columns plus ``live`` (whether the row belongs in the frame) for
    every row changed since ``{since}`` (a timestamp literal: when the frame was last read, less
    a look-back for transactions that committed late) or with a key above ``{after}`` (the
    largest key in the frame). Rows read replace the frame's rows with the same ``key``.
    ``latest`` gives the table's largest key: a snapshot on disk holding a larger one was taken
    of another database (or of this one before a restore) and is not used.
    """

    key: str
    select: str
    latest: str


@dataclass(frozen=True)
class FrameSpec:
    """A loadable frame: its SELECT, its typed columns, the data version that invalidates it,
    and (for the large tables) how to catch up incrementally when the version moves."""

    name: str
    select: str
    columns: Mapping[str, Kind]
    # A SQL expression (over the frame's table) whose value changes whenever the rows change.
    version: str
    changes: Changes | None = None


# Rows of customers changed since the cursor: a merge moves tags and orders to the kept customer
# and updates both customers, so their rows are re-read with them.
_CHANGED_CUSTOMERS = "SELECT id FROM customers WHERE updated_at >= {since}"
_CUSTOMER_COLUMNS = (
    "id, name, kind, owner_id, pool_id, created_at, signed_at, deal_status, industry, level, "
    "source, province, city, gender, birth_date"
)
_LIVE_CUSTOMERS = "FROM customers WHERE deleted_at IS NULL"
CUSTOMERS = FrameSpec(
    "customers",
    f"SELECT {_CUSTOMER_COLUMNS} {_LIVE_CUSTOMERS}",
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
    # Every change of a customer (soft delete included) sets updated_at.
    Changes(
        "id",
        f"SELECT {_CUSTOMER_COLUMNS}, deleted_at IS NULL AS live FROM customers "
        "WHERE updated_at >= {since}",
        "SELECT max(id) AS latest FROM customers",
    ),
)
_TAG_COLUMNS = "id AS row_id, customer_id, tag_id, added_at, removed_at, TRUE AS live"
# Every tag span ever recorded (rows are never deleted): the tags as they were at any moment.
CUSTOMER_TAGS = FrameSpec(
    "customer_tags",
    "SELECT id AS row_id, customer_id, tag_id, added_at, removed_at FROM customer_tags",
    {
        "row_id": "int",
        "customer_id": "int",
        "tag_id": "int",
        "added_at": "datetime",
        "removed_at": "datetime",
    },
    "(SELECT max(id) FROM customer_tags), (SELECT max(removed_at) FROM customer_tags), "
    "(SELECT max(deleted_at) FROM customers)",  # a merge moves the duplicate's tags
    # One indexed SELECT per reason (an OR with a sub-query would scan the whole history).
    Changes(
        "row_id",
        f"SELECT {_TAG_COLUMNS} FROM customer_tags WHERE id > {{after}} "
        f"UNION SELECT {_TAG_COLUMNS} FROM customer_tags WHERE added_at >= {{since}} "
        f"UNION SELECT {_TAG_COLUMNS} FROM customer_tags WHERE removed_at >= {{since}} "
        f"UNION SELECT {_TAG_COLUMNS} FROM customer_tags "
        f"WHERE customer_id IN ({_CHANGED_CUSTOMERS})",
        "SELECT max(id) AS latest FROM customer_tags",
    ),
)
TAGS = FrameSpec(
    "tags",
    "SELECT tags.id AS tag_id, tags.name AS tag, tags.group_id, tag_groups.name AS tag_group "
    "FROM tags JOIN tag_groups ON tag_groups.id = tags.group_id",
    {"tag_id": "int", "tag": "str", "group_id": "int", "tag_group": "str"},
    "(SELECT max(updated_at) FROM tags), (SELECT max(updated_at) FROM tag_groups)",
)
_ORDER_COLUMNS = "id AS order_id, customer_id, ordered_at, amount_cents, cost_cents, channel"
ORDERS = FrameSpec(
    "orders",
    f"SELECT {_ORDER_COLUMNS} FROM orders",
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
    Changes(
        "order_id",
        f"SELECT {_ORDER_COLUMNS}, TRUE AS live FROM orders WHERE id > {{after}} "
        f"UNION SELECT {_ORDER_COLUMNS}, TRUE AS live FROM orders WHERE created_at >= {{since}} "
        f"UNION SELECT {_ORDER_COLUMNS}, TRUE AS live FROM orders "
        f"WHERE customer_id IN ({_CHANGED_CUSTOMERS})",
        "SELECT max(id) AS latest FROM orders",
    ),
)
_LINE_COLUMNS = "id AS line_id, order_id, product_id, quantity, unit_price_cents, unit_cost_cents"
ORDER_LINES = FrameSpec(
    "order_lines",
    f"SELECT {_LINE_COLUMNS} FROM order_lines",
    {
        "line_id": "int",
        "order_id": "int",
        "product_id": "int",
        "quantity": "int",
        "unit_price_cents": "int",
        "unit_cost_cents": "int",
    },
    "(SELECT max(id) FROM order_lines)",
    # Lines are written with their order and never edited.
    Changes(
        "line_id",
        f"SELECT {_LINE_COLUMNS}, TRUE AS live FROM order_lines WHERE id > {{after}} "
        f"UNION SELECT {_LINE_COLUMNS}, TRUE AS live FROM order_lines "
        "WHERE order_id IN (SELECT id FROM orders WHERE created_at >= {since})",
        "SELECT max(id) AS latest FROM order_lines",
    ),
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
        Changes(
            "customer_id",
            f"SELECT id AS customer_id, {value} AS value, deleted_at IS NULL AS live "
            "FROM customers WHERE updated_at >= {since}",
            "SELECT max(id) AS latest FROM customers",
        ),
    )


# A catch-up re-reads the rows changed this long before the previous read began, so that rows a
# transaction wrote before that read but committed after it are not missed.
LOOKBACK = dt.timedelta(minutes=2)
_SNAPSHOT_FORMAT = 1


@dataclass
class _Entry:
    version: tuple[str, ...]
    checked_at: float  # monotonic: when the version was last confirmed
    frame: pl.DataFrame
    since: dt.datetime  # the next catch-up reads rows changed at or after this moment
    full_at: dt.datetime  # when this frame's lineage last read its whole table
    saved_at: float = -math.inf  # monotonic: when it was last written as a snapshot


@dataclass
class AnalyticsStore:
    """Loaded frames for one database, the worker pool that loads and computes, and the cache.

    A frame whose data version moved catches up by reading only the rows changed since it was
    read (``Changes``); it is read whole again, in the background, every ``full_reload_seconds``
    (healing whatever a catch-up could miss, e.g. a transaction open longer than the look-back).
    With a ``cache_dir``, frames are also kept there as Arrow IPC files, so that a process that
    starts (or a second worker) maps the file and catches up instead of reading whole tables.
    """

    database_url: str
    workers: int = 1
    # A frame younger than this is reused without checking its version (bounded staleness).
    refresh_seconds: float = 0.0
    full_reload_seconds: float = 3600.0
    cache_dir: Path | None = None
    # A frame that caught up is written to the cache directory again at most this often.
    snapshot_seconds: float = 600.0
    _executor: ThreadPoolExecutor = field(init=False)
    _loader: ThreadPoolExecutor = field(init=False)
    _cache: dict[str, _Entry] = field(init=False, default_factory=dict)
    _loading: dict[tuple[str, tuple[str, ...]], asyncio.Future[_Entry]] = field(
        init=False, default_factory=dict
    )
    _generation: int = field(init=False, default=0)

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
            identity = url.set(drivername="postgresql", password=None).render_as_string()
        else:
            self._location = url.database or ""
            identity = str(Path(self._location).resolve())
        # Snapshots of different databases never mix: one directory per database.
        self._snapshots = (
            Path(self.cache_dir) / hashlib.sha256(identity.encode()).hexdigest()[:16]
            if self.cache_dir is not None
            else None
        )

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._loader.shutdown(wait=False, cancel_futures=True)
        self._cache.clear()

    def clear(self) -> None:
        """Forget every loaded frame (loads under way are discarded when they finish). Data
        versions assume rows are only added, updated or soft-deleted; whoever empties tables
        wholesale (tests, a restore) clears the cache and removes the snapshot directory."""
        self._generation += 1
        self._cache.clear()
        self._loading.clear()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a computation in the analytics pool (never on the event loop)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def spec(self, name: str) -> FrameSpec:
        if name.startswith("custom:"):
            return custom_field_spec(name.removeprefix("custom:"), self.dialect)
        return SPECS[name]

    async def frames(self, session: AsyncSession, names: Sequence[str]) -> dict[str, pl.DataFrame]:
        """The named frames at their current data version (catching up those that moved)."""
        specs = [self.spec(n) for n in dict.fromkeys(names)]
        now = time.monotonic()
        fresh = {
            s.name: e.frame
            for s in specs
            if (e := self._cache.get(s.name)) is not None
            and now - e.checked_at < self.refresh_seconds
        }
        stale = [s for s in specs if s.name not in fresh]
        if stale:
            versions = await self._versions(session, stale)
            loaded = await asyncio.gather(*(self._frame(s, versions[s.name]) for s in stale))
            fresh.update(zip((s.name for s in stale), loaded, strict=True))
        for spec in specs:
            self._reload_if_due(spec)
        return fresh

    async def _versions(
        self, session: AsyncSession, specs: Sequence[FrameSpec]
    ) -> dict[str, tuple[str, ...]]:
        parts = [s.version for s in specs]
        row = (await session.execute(text("SELECT " + ", ".join(parts)))).one()
        values = list(row)
        result: dict[str, tuple[str, ...]] = {}
        for spec, part in zip(specs, parts, strict=True):
            width = part.count("SELECT")
            result[spec.name] = tuple(str(v) for v in values[:width])
            values = values[width:]
        return result

    async def _frame(self, spec: FrameSpec, version: tuple[str, ...]) -> pl.DataFrame:
        entry = self._cache.get(spec.name)
        if entry is not None and entry.version == version:
            entry.checked_at = time.monotonic()
            return entry.frame
        pending = self._submit(spec, version, entry)
        return (await asyncio.shield(pending)).frame

    def _submit(
        self, spec: FrameSpec, version: tuple[str, ...], base: _Entry | None
    ) -> asyncio.Future[_Entry]:
        """One load per frame and version at a time, shared by whoever asks meanwhile; the
        result goes into the cache when it is done, even if every asker has gone."""
        key = (spec.name, version)
        pending = self._loading.get(key)
        if pending is None:
            loop = asyncio.get_running_loop()
            pending = asyncio.ensure_future(
                loop.run_in_executor(self._loader, self._refresh, spec, version, base)
            )
            self._loading[key] = pending
            generation = self._generation

            def settle(done: asyncio.Future[_Entry]) -> None:
                if self._loading.get(key) is done:
                    del self._loading[key]
                # The loader runs one load at a time in order: what finished last was read last.
                if generation == self._generation and not done.cancelled() and not done.exception():
                    self._cache[spec.name] = done.result()

            pending.add_done_callback(settle)
        return pending

    def _reload_if_due(self, spec: FrameSpec) -> None:
        """Read a caught-up frame whole again, in the background, when its time has come."""
        entry = self._cache.get(spec.name)
        if (
            entry is not None
            and spec.changes is not None
            and utcnow() - entry.full_at >= dt.timedelta(seconds=self.full_reload_seconds)
            and not any(name == spec.name for name, _ in self._loading)
        ):
            pending = self._submit(spec, entry.version, None)
            # Nobody awaits it: failures are logged, the caught-up frame stays in use.
            pending.add_done_callback(_log_failure)

    def prepare(self) -> None:
        """Import the database driver (pyarrow with it: seconds) before the first request."""
        if self.dialect == "postgresql":
            import adbc_driver_postgresql.dbapi  # noqa: F401

    def _refresh(self, spec: FrameSpec, version: tuple[str, ...], base: _Entry | None) -> _Entry:
        """In the loader thread: catch ``base`` (or the snapshot on disk) up, else read whole."""
        started = utcnow()
        if base is None and spec.changes is not None:
            base = self._read_snapshot(spec)
        due = started - dt.timedelta(seconds=self.full_reload_seconds)
        if base is not None and spec.changes is not None and base.full_at > due:
            sql = spec.changes.select.format(
                since=self._timestamp(base.since),
                after=int(base.frame[spec.changes.key].max() or 0),  # type: ignore[arg-type]
            )
            changed = self._read(sql, {**spec.columns, "live": "bool"})
            entry = _Entry(
                version,
                time.monotonic(),
                _apply(base.frame, changed, spec.changes.key),
                since=started - LOOKBACK,
                full_at=base.full_at,
                saved_at=base.saved_at,
            )
        else:
            frame = self._read(spec.select, spec.columns)
            entry = _Entry(version, time.monotonic(), frame, started - LOOKBACK, started)
        if (
            self._snapshots is not None
            and spec.changes is not None
            and time.monotonic() - entry.saved_at >= self.snapshot_seconds
        ):
            # After this load, not within it: the request waiting for the frame goes on.
            entry.saved_at = time.monotonic()
            with contextlib.suppress(RuntimeError):  # the store is closing
                self._loader.submit(self._write_snapshot, spec, entry)
        return entry

    def _timestamp(self, moment: dt.datetime) -> str:
        """A SQL literal for ``moment`` as the database compares stored timestamps."""
        utc = moment.astimezone(dt.UTC)
        if self.dialect == "postgresql":
            return f"TIMESTAMPTZ '{utc.isoformat()}'"
        return "'" + utc.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds") + "'"

    def _read(self, select: str, columns: Mapping[str, Kind]) -> pl.DataFrame:
        """Read rows (in a loader thread) and give every column its type."""
        if self.dialect == "postgresql":
            frame = self._read_postgresql(select)
        else:
            frame = self._read_sqlite(select, columns)
        return frame.select(_typed(frame, name, kind) for name, kind in columns.items())

    def _read_postgresql(self, select: str) -> pl.DataFrame:
        """ADBC: PostgreSQL's binary COPY straight into Arrow."""
        import adbc_driver_postgresql.dbapi as driver

        with driver.connect(self._location) as conn, conn.cursor() as cursor:
            cursor.execute(select)
            frame = pl.from_arrow(cursor.fetch_arrow_table())
        assert isinstance(frame, pl.DataFrame)
        return frame

    def _read_sqlite(self, select: str, columns: Mapping[str, Kind]) -> pl.DataFrame:
        """SQLite through the interpreter's own sqlite3 module, straight into columns.

        Not ADBC: its driver links a second copy of the SQLite library into the process, and
        two copies in one process do not see each other's POSIX locks — reads miss the app's
        recent WAL commits, and closing one copy's file descriptor drops the other's locks
        ("How To Corrupt An SQLite Database File", 2.2.1).
        """
        location = Path(self._location).resolve().as_uri() + "?mode=ro"
        conn = sqlite3.connect(location, uri=True, check_same_thread=False)
        try:
            cursor = conn.execute(select)
            names = [d[0] for d in cursor.description]
            schema = {name: _SQLITE_READ_TYPES[columns[name]] for name in names}
            frame = pl.DataFrame(cursor.fetchall(), schema=schema, orient="row")
        finally:
            conn.close()
        return frame

    # --- snapshots: frames kept on disk between runs and shared by the workers ---------------

    def _snapshot_path(self, spec: FrameSpec) -> Path | None:
        if self._snapshots is None:
            return None
        return self._snapshots / (spec.name.replace(":", "-") + ".arrow")

    def _write_snapshot(self, spec: FrameSpec, entry: _Entry) -> None:
        """Write the frame and its cursor as one Arrow IPC file, replaced atomically."""
        path = self._snapshot_path(spec)
        if path is None:
            return
        import pyarrow as pa

        meta = {"spec": _fingerprint(spec), "since": entry.since.isoformat()}
        meta["full_at"] = entry.full_at.isoformat()
        table = entry.frame.to_arrow()
        table = table.replace_schema_metadata({"kehu": json.dumps(meta)})
        temporary = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with (
                pa.OSFile(str(temporary), "wb") as sink,
                pa.ipc.new_file(sink, table.schema) as writer,
            ):
                writer.write_table(table)
            os.replace(temporary, path)
        except OSError:
            log.warning("could not write the analytics snapshot %s", path, exc_info=True)
            temporary.unlink(missing_ok=True)

    def _read_snapshot(self, spec: FrameSpec) -> _Entry | None:
        """The frame kept on disk (memory-mapped: workers share its pages), if it is usable."""
        path = self._snapshot_path(spec)
        if path is None or not path.exists():
            return None
        import pyarrow as pa

        try:
            with pa.memory_map(str(path), "r") as source:
                table = pa.ipc.open_file(source).read_all()
            meta = json.loads((table.schema.metadata or {}).get(b"kehu", b"{}"))
            if meta.get("spec") != _fingerprint(spec):
                return None
            since = dt.datetime.fromisoformat(meta["since"])
            full_at = dt.datetime.fromisoformat(meta["full_at"])
        except (OSError, ValueError, KeyError, pa.ArrowException):
            log.warning("ignoring the unreadable analytics snapshot %s", path, exc_info=True)
            return None
        frame = pl.from_arrow(table.replace_schema_metadata(None))
        assert isinstance(frame, pl.DataFrame)
        assert spec.changes is not None
        kept = frame[spec.changes.key].max()
        latest = self._read(spec.changes.latest, {"latest": "int"})
        if kept is not None and (latest.item() is None or kept > latest.item()):
            log.warning("the analytics snapshot %s is of other data; reading the table", path)
            return None
        return _Entry((), 0.0, frame, since, full_at, saved_at=time.monotonic())


def _fingerprint(spec: FrameSpec) -> str:
    """What a snapshot was read with: a different query or schema makes it unusable."""
    parts = [str(_SNAPSHOT_FORMAT), spec.select, repr(sorted(spec.columns.items()))]
    parts.append(spec.changes.select if spec.changes else "")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _apply(frame: pl.DataFrame, changed: pl.DataFrame, key: str) -> pl.DataFrame:
    """``frame`` with the rows read by a catch-up: each replaces the row with its key, and rows
    no longer ``live`` (a customer deleted) leave."""
    if changed.is_empty():
        return frame
    changed = changed.unique(key, keep="last")
    if frame.is_empty() or changed[key].min() > frame[key].max():  # type: ignore[operator]
        kept = frame  # only new rows: nothing to replace
    else:
        kept = frame.filter(~pl.col(key).is_in(changed[key].implode()))
    merged = pl.concat([kept, changed.filter(pl.col("live")).drop("live")])
    # Appends add chunks; gathers over many chunks are slower than over one.
    return merged.rechunk() if merged.n_chunks() > 8 else merged


def _log_failure(done: asyncio.Future[_Entry]) -> None:
    if not done.cancelled() and (error := done.exception()) is not None:
        log.error("reloading an analytics frame failed", exc_info=error)


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
    """Rows of ``frame`` (with a ``customer_id``) that belong to ``customers`` (already scoped):
    a flag per customer id, gathered (several times faster than a semi-join at a million)."""
    if frame.is_empty() or customers.is_empty():
        return frame.clear()
    ids = customers["id"]
    size = max(int(ids.max()), int(frame["customer_id"].max())) + 1  # type: ignore[arg-type]
    flags = pl.zeros(size, dtype=pl.Boolean, eager=True).scatter(ids, True)
    return frame.filter(flags.gather(frame["customer_id"]))


def customer_columns(customers: pl.DataFrame, ids: pl.Series, *columns: str) -> pl.DataFrame:
    """``id`` and ``columns`` of the customers ``ids`` names (a page: joining a page to every
    customer would hash them all)."""
    return customers.filter(pl.col("id").is_in(ids.implode())).select("id", *columns)
