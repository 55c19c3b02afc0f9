"""Writing rows out as CSV or XLSX for streaming exports (SPEC I2), safe to open in Excel.

Text that a spreadsheet would run as a formula (it starts with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return) is neutralised as OWASP's CSV-injection guidance says
(https://owasp.org/www-community/attacks/CSV_Injection): in CSV with a leading apostrophe, in
XLSX by storing it as a typed text cell with Excel's "quote prefix" (so it stays text even when
edited). Numbers are never touched: ``-5`` exported as a number stays a number.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import math
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import IO, Any

from app.services.imports._text import number_text

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CSV_CHUNK_CHARS = 64 * 1024
XLSX_CHUNK_BYTES = 256 * 1024
# Characters XML 1.0 cannot hold (openpyxl refuses them).
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def is_formula_like(text: str) -> bool:
    return text.startswith(FORMULA_PREFIXES)


def safe_cell(value: object) -> str:
    """The CSV text of a value: numbers as numbers, dates ISO, text made formula-safe.

    ``"=SUM(A1)"`` → ``"'=SUM(A1)"``; ``-5`` (a number) → ``"-5"``; ``"-5"`` (text) → ``"'-5"``.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return number_text(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        text = ", ".join(safe_cell(v).removeprefix("'") for v in value)
    else:
        text = str(value)
    return "'" + text if is_formula_like(text) else text


def iter_csv(
    rows: Iterable[Sequence[object]], *, header: Sequence[str] | None = None, bom: bool = True
) -> Iterator[bytes]:
    """CSV as UTF-8 chunks, the first starting with a BOM so Excel reads Chinese correctly.

    Rows are consumed lazily; each chunk holds about 64 KiB, for a streaming response. A file
    written in parts passes ``bom=False`` (and no header) for every part after the first.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if bom:
        yield codecs.BOM_UTF8
    if header is not None:
        writer.writerow([safe_cell(h) for h in header])
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
        if buffer.tell() >= CSV_CHUNK_CHARS:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode("utf-8")


def _xlsx_value(value: object, tz: dt.tzinfo | None) -> Any:
    if value is None or isinstance(value, bool | int | Decimal):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime):
        # Excel has no time zones: show the wall-clock time in ``tz`` (or as given).
        if value.tzinfo is not None:
            value = (value.astimezone(tz) if tz is not None else value).replace(tzinfo=None)
        return value
    if isinstance(value, dt.date | dt.time):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return _ILLEGAL_XML.sub("", ", ".join(safe_cell(v).removeprefix("'") for v in value))
    return _ILLEGAL_XML.sub("", str(value))


def write_xlsx(
    rows: Iterable[Sequence[object]],
    target: IO[bytes],
    *,
    header: Sequence[str] | None = None,
    sheet_title: str = "Sheet1",
    tz: dt.tzinfo | None = None,
) -> None:
    """Write rows to an XLSX workbook in ``target`` with openpyxl's write-only (streaming) mode.

    Numbers, dates and booleans keep their types; aware datetimes are shown in ``tz``.
    """
    import openpyxl
    from openpyxl.cell import WriteOnlyCell

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet(title=sheet_title[:31] or "Sheet1")

    def cells(values: Iterable[object]) -> list[Any]:
        out: list[Any] = []
        for value in values:
            converted = _xlsx_value(value, tz)
            if isinstance(converted, str) and is_formula_like(converted):
                cell = WriteOnlyCell(sheet, value=converted)
                cell.data_type = "s"  # openpyxl would store "=..." as a formula
                cell.quotePrefix = True
                out.append(cell)
            else:
                out.append(converted)
        return out

    if header is not None:
        sheet.append(cells(header))
    for row in rows:
        sheet.append(cells(row))
    book.save(target)


def iter_xlsx(
    rows: Iterable[Sequence[object]],
    *,
    header: Sequence[str] | None = None,
    sheet_title: str = "Sheet1",
    tz: dt.tzinfo | None = None,
) -> Iterator[bytes]:
    """An XLSX workbook as byte chunks for a streaming response.

    A workbook is a ZIP archive that is only complete at the end, so it is written to a spooled
    temporary file first (in memory up to 8 MiB) and then read out in chunks; run it in a
    worker thread, the writing is blocking.
    """
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
        write_xlsx(rows, spool, header=header, sheet_title=sheet_title, tz=tz)
        spool.seek(0)
        while chunk := spool.read(XLSX_CHUNK_BYTES):
            yield chunk
