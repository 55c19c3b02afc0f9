"""Exports (SPEC I2): every record of a list the caller may read, as CSV or XLSX.

An export walks the list's own pages — the same service, filters, data scope and withheld pool
fields as ``GET`` of the list (one short read transaction per page of 200), so it can never show
more than the list would. CSV is streamed as the pages arrive; an XLSX workbook is only complete
at its end, so it is written in a worker thread that pulls the pages and is then sent. Cells that
a spreadsheet would run as formulas are neutralised (``imports.export.safe_cell``). Headers are
those the importer recognises, so an exported file can be imported again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import READ_ONLY
from app.services.imports.export import iter_csv, iter_xlsx

Format = Literal["csv", "xlsx"]
Lang = Literal["zh-CN", "en"]
PAGE_SIZE = 200
# A page of records in their API shape, and the cursor of the next page (None: the last).
Page = Callable[[AsyncSession, str | None, int], Awaitable[tuple[list[dict[str, Any]], str | None]]]
MEDIA_TYPES: Mapping[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@dataclass(frozen=True)
class Column:
    """``path``: a dotted path into the record as the API shows it (``owner.display_name``); a
    list of objects gives their ``name``s, joined."""

    path: str
    zh: str
    en: str


@dataclass(frozen=True)
class Export:
    name: str
    columns: Sequence[Column]
    page: Page
    # One row per element of this list (an order's lines), the element's fields under
    # ``<explode>.<field>``; a record without any still gets one row.
    explode: str | None = None

    def header(self, lang: Lang) -> list[str]:
        return [c.zh if lang == "zh-CN" else c.en for c in self.columns]

    def rows(self, records: Sequence[Mapping[str, Any]]) -> Iterator[list[object]]:
        for record in records:
            parts = record.get(self.explode) if self.explode else None
            for part in parts or [None]:
                scope = {**record, self.explode: part} if self.explode else record
                yield [value_at(scope, c.path) for c in self.columns]


def value_at(record: Mapping[str, Any], path: str) -> object:
    value: Any = record
    for key in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    if isinstance(value, list):
        return [v.get("name", "") if isinstance(v, Mapping) else v for v in value]
    if isinstance(value, Mapping):
        return value.get("name") or value.get("display_name")
    return value


async def _pages(
    maker: async_sessionmaker[AsyncSession], page: Page
) -> AsyncIterator[list[dict[str, Any]]]:
    cursor: str | None = None
    while True:
        async with maker() as session, session.begin():
            await session.connection(execution_options=READ_ONLY)
            records, cursor = await page(session, cursor, PAGE_SIZE)
        yield records
        if not cursor:
            return


Done = Callable[[int], Awaitable[None]]


async def csv_chunks(
    export: Export,
    maker: async_sessionmaker[AsyncSession],
    lang: Lang,
    on_done: Done | None = None,
) -> AsyncIterator[bytes]:
    """The file as it is read: header and BOM first, then each page's rows; then ``on_done``
    with the number of rows written."""
    first = True
    count = 0
    async for records in _pages(maker, export.page):
        header = export.header(lang) if first else None
        rows = list(export.rows(records))
        count += len(rows)
        for chunk in iter_csv(rows, header=header, bom=first):
            yield chunk
        first = False
    if on_done is not None:
        await on_done(count)


async def xlsx_chunks(
    export: Export,
    maker: async_sessionmaker[AsyncSession],
    lang: Lang,
    tz: str,
    on_done: Done | None = None,
) -> AsyncIterator[bytes]:
    """The workbook, written in a worker thread that pulls the pages from this event loop; then
    ``on_done`` with the number of rows written."""
    loop = asyncio.get_running_loop()
    pages = _pages(maker, export.page)
    count = 0

    async def next_page() -> list[dict[str, Any]]:
        return await anext(pages)

    def rows() -> Iterator[list[object]]:
        nonlocal count
        while True:
            try:
                records = asyncio.run_coroutine_threadsafe(next_page(), loop).result()
            except StopAsyncIteration:
                return
            for row in export.rows(records):
                count += 1
                yield row

    def write() -> list[bytes]:
        header = export.header(lang)
        return list(iter_xlsx(rows(), header=header, sheet_title=export.name, tz=ZoneInfo(tz)))

    for chunk in await asyncio.to_thread(write):
        yield chunk
    if on_done is not None:
        await on_done(count)
