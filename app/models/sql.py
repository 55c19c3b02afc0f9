"""SQL functions spelled differently by PostgreSQL and SQLite, as SQLAlchemy constructs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Integer, SQLColumnExpression
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class json_object_of(FunctionElement[Any]):
    """A JSON object from alternating keys and values (keys: ``literal_column("'name'")``):
    ``json_build_object`` on PostgreSQL, ``json_object`` on SQLite."""

    type = JSON()
    inherit_cache = True
    name = "json_object_of"


@compiles(json_object_of)
def _json_object(element: json_object_of, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_object({compiler.process(element.clauses, **kw)})"


@compiles(json_object_of, "postgresql")
def _json_build_object(element: json_object_of, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_build_object({compiler.process(element.clauses, **kw)})"


class json_array_agg(FunctionElement[Any]):
    """Aggregate: the JSON array of its first argument's values, ``[]`` for no rows, in the
    order of the rest (on SQLite, which has no ``ORDER BY`` in aggregates before 3.44, in the
    order rows come: aggregate an ordered subquery)."""

    type = JSON()
    inherit_cache = True
    name = "json_array_agg"


@compiles(json_array_agg)
def _json_group_array(element: json_array_agg, compiler: SQLCompiler, **kw: Any) -> str:
    value = next(iter(element.clauses))
    return f"json_group_array({compiler.process(value, **kw)})"


@compiles(json_array_agg, "postgresql")
def _json_agg(element: json_array_agg, compiler: SQLCompiler, **kw: Any) -> str:
    value, *order = element.clauses
    ordered = ", ".join(compiler.process(o, **kw) for o in order)
    by = f" ORDER BY {ordered}" if order else ""
    return f"coalesce(json_agg({compiler.process(value, **kw)}{by}), '[]'::json)"


def month_day_sql(column: str, *, utc: bool = False) -> str:
    """PostgreSQL: a date's ``month * 100 + day`` as an integer, immutable, so that an index can
    hold it (``to_char`` is only stable). ``utc``: of a ``timestamptz``, its date in UTC. The
    indexes on customers' dates (migration 0017) are spelt with this, and queries must match
    them exactly (``month_day`` renders the same text, without bound parameters)."""
    value = f"({column} AT TIME ZONE 'UTC')" if utc else column
    return f"(CAST(EXTRACT(MONTH FROM {value}) * 100 + EXTRACT(DAY FROM {value}) AS INTEGER))"


class month_day(FunctionElement[int]):
    """A date's or UTC timestamp's ``month * 100 + day`` (e.g. 1224 for 24 December), by
    ``month_day_sql`` on PostgreSQL and ``strftime`` on SQLite (where timestamps are UTC)."""

    type = Integer()
    inherit_cache = True
    name = "month_day"

    def __init__(self, column: SQLColumnExpression[Any], *, utc: bool = False) -> None:
        self.utc = utc
        super().__init__(column)


@compiles(month_day)
def _strftime_month_day(element: month_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(strftime('%m%d', {compiler.process(element.clauses, **kw)}) AS INTEGER)"


@compiles(month_day, "postgresql")
def _extract_month_day(element: month_day, compiler: SQLCompiler, **kw: Any) -> str:
    return month_day_sql(compiler.process(element.clauses, **kw), utc=element.utc)
