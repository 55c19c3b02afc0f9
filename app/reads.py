"""Reads on one pooled connection, for the few hottest requests (ADR 0014).

A request served directly (``deps.direct_read``, ``routers.common.DirectRoute``) reads through
``Reads``: the same SQLAlchemy statements as everywhere else — built by ``app.access`` and the
services —, run

- on PostgreSQL, on the asyncpg connection itself: each statement compiled once for the dialect
  (kept beside the statement, which ``access.built_for`` keeps on its principal), its arguments
  bound and its columns processed by the column types as SQLAlchemy would, without SQLAlchemy's
  execution path (cache key, greenlet, result wrapping: a third of a customer read, bench/
  RESULTS.md 2026-12-03 b);
- elsewhere (SQLite), through the SQLAlchemy connection, as any other read.

Only queries: a statement is a ``Select``. A driver error leaves the connection unusable for the
pool (``invalidate``): whatever state the failed statement left on the server (an implicit
transaction, see ``db._end_a_failed_read``) goes with it.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn

from app.db import database_unavailable


class Record(dict[str, Any]):
    """A result row: its columns by name, as keys and as attributes (like a ``Row``)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(slots=True)
class _Prepared:
    """A statement compiled for the driver: what to send, and how to read what comes back."""

    compiled: SQLCompiler
    keys: tuple[str, ...]
    # The column types' processors by column: known once the server has described the columns
    # (a type's processor may depend on the column's type there, as a numeric's does).
    results: tuple[tuple[int, Callable[[Any], Any]], ...] | None
    # A processor per parameter (a sequence of them for a tuple's elements: not used here).
    binds: Mapping[str, Any]

    def arguments(self, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """The SQL and its positional arguments; lists bound to ``IN`` expanded."""
        compiled = self.compiled
        binds: Mapping[str, Any]
        if compiled.post_compile_params:
            expanded = compiled.construct_expanded_state(dict(params))
            sql, names, values = expanded.statement, expanded.positiontup, expanded.parameters
            binds = {**self.binds, **expanded.processors}
        else:
            sql, names = compiled.string, compiled.positiontup
            values, binds = compiled.construct_params(dict(params)), self.binds
        arguments = []
        for name in names or ():
            value = values[name]
            process = binds.get(name)
            arguments.append(process(value) if callable(process) else value)
        return sql, arguments

    async def describe(self, driver: Any, sql: str, dialect: Dialect) -> None:
        """Learn the columns' processors from the server's description of them."""
        described = await driver.prepare(sql)
        oids = [attribute.type.oid for attribute in described.get_attributes()]
        columns = self.compiled._result_columns  # (keyname, name, objects, type)
        results = []
        for index, column in enumerate(columns):
            process = column[3]._cached_result_processor(dialect, oids[index])
            if process is not None:
                results.append((index, process))
        self.results = tuple(results)

    def record(self, values: Sequence[Any]) -> Record:
        record = Record(zip(self.keys, values, strict=True))
        for index, process in self.results or ():
            key = self.keys[index]
            record[key] = process(record[key])
        return record


_PREPARED: weakref.WeakKeyDictionary[Select[Any], _Prepared] = weakref.WeakKeyDictionary()


def prepared(statement: Select[Any], dialect: Dialect) -> _Prepared:
    """``statement`` compiled for ``dialect``'s driver, once for as long as it lives."""
    kept = _PREPARED.get(statement)
    if kept is not None:
        return kept
    if not isinstance(statement, Select):
        raise TypeError("direct reads run queries only")
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    kept = _Prepared(
        compiled=compiled,
        keys=tuple(column[0] for column in compiled._result_columns),
        results=None,
        binds=dict(compiled._bind_processors),
    )
    _PREPARED[statement] = kept
    return kept


class Reads:
    """Queries on one connection: on the driver when it is asyncpg, else through SQLAlchemy."""

    def __init__(
        self,
        connection: AsyncConnection | None,
        driver: Any = None,
        *,
        dialect: Dialect | None = None,
        invalidate: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        # ``connection`` may be None when ``driver`` is given: a connection of the pool taken
        # without SQLAlchemy's ``Connection`` (``checkout``).
        self.connection = connection
        self.driver = driver
        if dialect is None:
            assert connection is not None
            dialect = connection.dialect
        self.dialect = dialect
        if invalidate is None:
            assert connection is not None
            invalidate = connection.invalidate
        # Makes the connection unusable for the pool (after a driver error).
        self.invalidate = invalidate

    @classmethod
    async def on(cls, connection: AsyncConnection) -> Reads:
        """Reads on ``connection`` as it is, in its transaction if it has one (a request's
        session): with asyncpg, on the driver beneath it."""
        driver = None
        if connection.dialect.driver == "asyncpg":
            driver = (await connection.get_raw_connection()).driver_connection
        return cls(connection, driver)

    @classmethod
    @asynccontextmanager
    async def checkout(
        cls, engine: AsyncEngine, options: Mapping[str, Any]
    ) -> AsyncIterator[Reads]:
        """Reads on a connection of ``engine``'s pool, given back when done. With asyncpg, the
        pool's connection itself: SQLAlchemy's ``Connection`` around it cost three times as
        much to take and give back (bench/RESULTS.md 2026-12-03 d), and the driver needs no
        execution ``options`` (without a transaction, each statement commits on its own). Else
        a ``Connection`` with ``options``."""
        if engine.dialect.driver != "asyncpg":
            async with engine.connect() as connection:
                await connection.execution_options(**options)
                yield cls(connection)
            return
        pooled = await engine.raw_connection()
        try:
            yield cls(
                None,
                pooled.driver_connection,
                dialect=engine.dialect,
                invalidate=partial(greenlet_spawn, pooled.invalidate),
            )
        finally:
            # No I/O: nothing began a transaction, and an invalidated connection is closed
            # already. So the checkin has no point where a cancellation could cut it short.
            await greenlet_spawn(pooled.close)

    async def all(
        self, statement: Select[Any], params: Mapping[str, Any] | None = None
    ) -> list[Record]:
        return await self._all(statement, params)

    async def _all(
        self, statement: Select[Any], params: Mapping[str, Any] | None = None
    ) -> list[Record]:
        if self.driver is None:
            assert self.connection is not None
            result = await self.connection.execute(statement, dict(params or {}))
            return [Record(row) for row in result.mappings()]
        statement_for_driver = prepared(statement, self.dialect)
        sql, arguments = statement_for_driver.arguments(params or {})
        try:
            if statement_for_driver.results is None:
                await statement_for_driver.describe(self.driver, sql, self.dialect)
            rows = await self.driver.fetch(sql, *arguments)
        except Exception as exc:
            await self.invalidate()
            # As SQLAlchemy raises it, for the app's error handlers (422 for an argument the
            # column cannot hold, 503 for a database away).
            raise DBAPIError(
                sql, None, exc, connection_invalidated=database_unavailable(exc)
            ) from exc
        except BaseException:  # cancelled mid-statement: the connection's state is unknown
            await self.invalidate()
            raise
        return [statement_for_driver.record(row) for row in rows]

    async def first(
        self, statement: Select[Any], params: Mapping[str, Any] | None = None
    ) -> Record | None:
        rows = await self.all(statement, params)
        return rows[0] if rows else None

    async def scalar(self, statement: Select[Any], params: Mapping[str, Any] | None = None) -> Any:
        row = await self.first(statement, params)
        return next(iter(row.values())) if row else None
