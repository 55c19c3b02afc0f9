"""Engine, session factory and the declarative base with a fixed naming convention."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar

from sqlalchemy import Index, MetaData, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.util import await_only

T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def postgresql_only(index: Index) -> Index:
    """Mark an index as PostgreSQL-only (e.g. GIN trigram): not created, nor expected, on SQLite."""
    index.info["postgresql_only"] = True
    return index.ddl_if(dialect="postgresql")


def include_in_autogenerate(obj: Any, type_: str, dialect: str) -> bool:
    """Alembic ``include_object`` rule: PostgreSQL-only indexes do not exist elsewhere."""
    return not (type_ == "index" and obj.info.get("postgresql_only") and dialect != "postgresql")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the one writer; busy_timeout makes writers queue instead of
    # failing at once with "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    deferred = conn.get_execution_options().get("sqlite_deferred", False)
    conn.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")


READ_ONLY = {"sqlite_deferred": True}

# A request that only reads (GET, HEAD) on PostgreSQL: no BEGIN and no COMMIT around its
# statements, two round trips fewer (ADR 0013). Under READ COMMITTED every statement reads its own
# snapshot inside a transaction too, so nothing it sees changes; what it may not do is write,
# since each write would commit on its own: `_reads_only` refuses that.
_READS_ONLY = "kehu_reads_only"
REQUEST_READ_POSTGRESQL = {"isolation_level": "AUTOCOMMIT", _READS_ONLY: True}


class WriteInReadOnlyRequest(RuntimeError):
    """A statement other than a query on a connection that reads without a transaction."""


def request_read_options(engine: AsyncEngine) -> dict[str, Any]:
    """Execution options for the session of a request that only reads."""
    return REQUEST_READ_POSTGRESQL if engine.dialect.name == "postgresql" else READ_ONLY


def _reads_only(
    _conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
) -> None:
    # Queries start with SELECT or WITH (a data-modifying WITH would pass: none is used).
    reads_only = context is not None and context.execution_options.get(_READS_ONLY)
    if reads_only and not statement.lstrip()[:6].upper().startswith(("SELECT", "WITH")):
        raise WriteInReadOnlyRequest(f"a request that only reads ran: {statement[:80]}")


def _end_a_failed_read(context: ExceptionContext) -> None:
    """asyncpg sends a statement before it encodes the arguments: an argument it cannot encode
    (an integer beyond the column's range) fails before the Sync that ends the statement's
    implicit transaction, and the server keeps that open, with its locks, until the connection's
    next statement. A transaction's rollback ends it; a read without one sends an empty
    statement. (Seen: the pooled connection blocked a TRUNCATE until it was used again.)"""
    execution = context.execution_context
    if execution is None or context.is_disconnect or context.connection is None:
        return
    driver = context.connection.connection.driver_connection
    if driver is not None and execution.execution_options.get(_READS_ONLY):
        with suppress(Exception):  # a broken connection is replaced at its next checkout
            await_only(driver.execute(";"))


def create_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> AsyncEngine:
    if is_sqlite(url):
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 10})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; emit BEGIN IMMEDIATE ourselves so a
        # transaction takes the write lock up front and concurrent writers queue on busy_timeout
        # instead of failing on a lock upgrade (SQLAlchemy docs, "Serializable isolation /
        # Savepoints / Transactional DDL" for pysqlite). The embedded default serves small teams;
        # production runs PostgreSQL. Read-only work (GET requests) opts into a deferred BEGIN
        # with the ``sqlite_deferred`` execution option, so readers never queue behind writers.
        event.listen(engine.sync_engine, "begin", _sqlite_begin)

        @event.listens_for(engine.sync_engine, "connect")
        def _no_autobegin(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        return engine
    engine = create_async_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size)
    event.listen(engine.sync_engine, "checkout", _closed_connections_are_stale)
    event.listen(engine.sync_engine, "before_cursor_execute", _reads_only)
    event.listen(engine.sync_engine, "handle_error", _end_a_failed_read)
    return engine


def _closed_connections_are_stale(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection the server closed (a restart, a terminated backend) is replaced at
    checkout, before a request uses it: asyncpg notices the closed socket while the connection
    sits in the pool, so this costs no round trip. (SQLAlchemy's ``pool_pre_ping`` costs three
    with asyncpg — BEGIN, a ping, ROLLBACK — on every checkout.) A connection lost without the
    server closing it fails its first statement instead: that request gets a 503 and the pool
    is invalidated (``database_unavailable``)."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the database closed this pooled connection")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def transaction(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session in its own transaction: committed on success, rolled back on error."""
    async with maker() as session, session.begin():
        yield session


def dialect_insert(session: AsyncSession, model: Any) -> Any:
    """``INSERT`` of the session's dialect, which has ``on_conflict_do_update/nothing``
    (SQLite and PostgreSQL spell upserts alike; the generic ``insert`` has neither)."""
    dialect = session.get_bind().dialect.name
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(model)


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in slices of ``size``: bulk statements stay under the drivers' parameter limits
    (asyncpg: 32,767 per statement; SQLite: 32,766)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


# SQLSTATE classes and codes that mean "the database is not there right now", not "this request
# is wrong": connection exceptions (08), shutdowns and restarts (57P01-57P03), too many
# connections (53300), a database not accepting connections (55000 with ALLOW_CONNECTIONS off).
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03", "53300")


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is the database being unreachable, restarting or
    full — answered with 503 and Retry-After, and the request can be retried as it is."""
    from sqlalchemy.exc import DBAPIError

    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        state = getattr(seen, "sqlstate", None)
        if isinstance(state, str) and (
            state.startswith(_UNAVAILABLE_STATES)
            or (state == "55000" and "accepting connections" in str(seen))
        ):
            return True
        if isinstance(seen, ConnectionError | TimeoutError) or (
            isinstance(seen, OSError) and seen.errno is not None
        ):
            return True
        if "database is locked" in str(seen):  # SQLite: the writer held the lock past the timeout
            return True
        seen = seen.__cause__ or seen.__context__
    return False
