"""Read an uploaded CSV or XLSX file into a header and rows of strings (SPEC I1).

The format is taken from the content, not the name: an XLSX workbook is a ZIP archive holding
``xl/workbook.xml``; anything else must be text. CSV text may be UTF-8 (with or without BOM),
UTF-16 with a BOM (Excel's "Unicode text") or GB18030, the superset of GBK that Chinese Excel
saves by default. The delimiter (comma, semicolon or tab) is sniffed. Every way a file can be
unusable is an :class:`ImportFileError` with a code and a message that says what to do.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, NamedTuple

from app.services.imports._text import number_text, trim
from app.services.imports.errors import ImportFileError

MAX_ROWS = 100_000
MAX_BYTES = 64 * 1024 * 1024
# What the parts of an XLSX may unpack to: a guard against ZIP bombs.
MAX_XLSX_UNPACKED = 512 * 1024 * 1024
# This many blank worksheet rows in a row end the data.
XLSX_BLANK_RUN_LIMIT = 10_000
DELIMITERS = (",", ";", "\t")
_SNIFF_LINES = 50

FileFormat = Literal["csv", "xlsx"]

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_BINARY_MAGIC = {
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"\x1f\x8b": "a gzip archive",
    b"Rar!": "a RAR archive",
    b"7z\xbc\xaf": "a 7-Zip archive",
}
_SAVE_AS = "open it in Excel or WPS and save it as .xlsx or as CSV (UTF-8)"


class SourceRow(NamedTuple):
    """A data row: its number as a spreadsheet shows it (the header is row 1) and its cells."""

    number: int
    cells: list[str]


@dataclass(frozen=True, slots=True)
class Table:
    """A parsed file: its header cells and data rows (blank rows left out, numbers kept).

    Every row has at least as many cells as the header (short rows are padded with "").
    """

    format: FileFormat
    headers: list[str]
    rows: list[SourceRow]
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None


def detect_format(data: bytes, filename: str | None = None) -> FileFormat:
    """``"xlsx"`` or ``"csv"`` from the bytes; refuses everything else with a helpful message."""
    if not data.strip():
        raise ImportFileError("empty_file", "the file is empty")
    name = (filename or "").lower()
    if data.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
        except zipfile.BadZipFile:
            raise ImportFileError(
                "unreadable_file",
                f"the file looks like an Excel workbook but is damaged; {_SAVE_AS}",
            ) from None
        if "xl/workbook.xml" in names:
            return "xlsx"
        if "mimetype" in names or "content.xml" in names:
            what = "an OpenDocument (LibreOffice/WPS) file"
        else:
            what = "a ZIP archive, not an Excel workbook"
        raise ImportFileError("unsupported_format", f"the file is {what}; {_SAVE_AS}")
    if data.startswith(_OLE2_MAGIC):
        # Encrypted .xlsx workbooks are stored in the same container as old .xls ones.
        what = (
            "a password-protected workbook; remove the password, then save it again"
            if name.endswith((".xlsx", ".xlsm"))
            else f"an old-style Excel .xls workbook, which cannot be read; {_SAVE_AS}"
        )
        raise ImportFileError("unsupported_format", f"the file is {what}")
    for magic, what in _BINARY_MAGIC.items():
        if data.startswith(magic):
            raise ImportFileError("unsupported_format", f"the file is {what}, not CSV or XLSX")
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<html", b"<!doctype", b"<table", b"<?xml")):
        raise ImportFileError(
            "unsupported_format",
            "the file is a web page or XML (some systems save those with an .xls name), not CSV "
            f"or XLSX; {_SAVE_AS}",
        )
    if not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and b"\x00" in data[:65536]:
        raise ImportFileError(
            "unsupported_format",
            "the file is binary, not CSV or XLSX",
        )
    return "csv"


def read_table(
    data: bytes,
    filename: str | None = None,
    *,
    max_rows: int = MAX_ROWS,
    max_bytes: int = MAX_BYTES,
    sheet: str | None = None,
) -> Table:
    """Parse an uploaded file; ``filename`` only sharpens messages, the content decides.

    ``max_rows`` counts data rows (not the header); ``sheet`` picks an XLSX sheet by name (the
    first one by default).
    """
    if len(data) > max_bytes:
        raise ImportFileError(
            "file_too_large",
            f"the file is {len(data) / 1048576:.1f} MB; at most {max_bytes / 1048576:.0f} MB "
            "can be imported at once — split it",
        )
    if detect_format(data, filename) == "xlsx":
        return _read_xlsx(data, max_rows=max_rows, sheet=sheet)
    return _read_csv(data, max_rows=max_rows)


# --- CSV --------------------------------------------------------------------------------------


def decode_text(data: bytes) -> tuple[str, str]:
    """The text and the name of the encoding it was in; ``bad_encoding`` names the line."""
    if data.startswith(codecs.BOM_UTF8):
        return _decode(data[len(codecs.BOM_UTF8) :], "utf-8", offset=len(codecs.BOM_UTF8)), (
            "utf-8-sig"
        )
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _decode(data, "utf-16"), "utf-16"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as utf8_error:
        try:
            # GB18030 decodes every GBK (and GB2312) file the same way and more besides.
            return data.decode("gb18030").lstrip("\ufeff"), "gb18030"
        except UnicodeDecodeError as gb_error:
            error = max(utf8_error, gb_error, key=lambda e: e.start)
            line = data.count(b"\n", 0, error.start) + 1
            bad = data[error.start : error.start + 4].hex(" ")
            raise ImportFileError(
                "bad_encoding",
                f"line {line} cannot be decoded (bytes {bad}): the file is neither UTF-8 nor "
                "GBK/GB18030 text; save it as “CSV UTF-8” and upload it again",
                line=line,
            ) from None


def _decode(data: bytes, encoding: str, *, offset: int = 0) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ImportFileError(
            "bad_encoding",
            f"line {line} is not valid {encoding.upper()} (byte {offset + error.start}); save "
            "the file as “CSV UTF-8” and upload it again",
            line=line,
        ) from None


def sniff_delimiter(lines: Sequence[str]) -> str:
    """The delimiter that splits the first lines into the widest, most consistent table."""
    best, best_score = ",", (0.0, 0)
    for delimiter in DELIMITERS:
        try:
            widths = [
                len(r) for r in csv.reader(lines, delimiter=delimiter) if any(c.strip() for c in r)
            ]
        except csv.Error:
            continue
        if not widths or widths[0] < 2:
            continue
        consistency = sum(w == widths[0] for w in widths) / len(widths)
        score = (consistency, widths[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _read_csv(data: bytes, *, max_rows: int) -> Table:
    text, encoding = decode_text(data)
    if "\x00" in text:
        raise ImportFileError("unsupported_format", "the file is binary, not CSV or XLSX")
    # Only \r, \n and \r\n end lines (as the csv module expects), not U+2028 and the like.
    lines = io.StringIO(text, newline="").readlines()
    delimiter: str | None = None
    # Excel's hint line "sep=;" names the delimiter.
    hint = lines[0].rstrip("\r\n") if lines else ""
    if len(hint) == 5 and hint.lower().startswith("sep="):
        delimiter = hint[4]
        lines = lines[1:]
    if delimiter is None:
        delimiter = sniff_delimiter(lines[:_SNIFF_LINES])
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        records = _records(reader, max_rows=max_rows)
        headers, rows = _split_header(records)
    except csv.Error as error:
        raise ImportFileError(
            "unreadable_file",
            f"line {reader.line_num} is not valid CSV: {error}",
            line=reader.line_num,
        ) from None
    return Table("csv", headers, rows, encoding=encoding, delimiter=delimiter)


# --- XLSX -------------------------------------------------------------------------------------


def _read_xlsx(data: bytes, *, max_rows: int, sheet: str | None) -> Table:
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        if sum(info.file_size for info in archive.infolist()) > MAX_XLSX_UNPACKED:
            raise ImportFileError(
                "file_too_large", "the workbook unpacks to more than can be imported; split it"
            )
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
        raise ImportFileError(
            "unreadable_file", f"the workbook cannot be read ({error}); {_SAVE_AS}"
        ) from None
    try:
        if sheet is not None and sheet not in book.sheetnames:
            raise ImportFileError(
                "missing_header",
                f"the workbook has no sheet named {sheet!r} (it has: {', '.join(book.sheetnames)})",
            )
        worksheet = book[sheet] if sheet is not None else book.worksheets[0]
        # The declared size is no guide: formatting whole columns declares a million rows.
        cells = ([_display(v) for v in values] for values in worksheet.iter_rows(values_only=True))
        records = _records(cells, max_rows=max_rows, blank_run_limit=XLSX_BLANK_RUN_LIMIT)
        headers, rows = _split_header(records)
        return Table("xlsx", headers, rows, sheet=worksheet.title)
    finally:
        book.close()


def _display(value: Any) -> str:
    """A cell value as the text a person reads; dates as ISO 8601."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, int | float | Decimal):
        return number_text(value)
    if isinstance(value, dt.timedelta):
        return str(value)
    return str(value)


# --- shared -----------------------------------------------------------------------------------


def _too_many(max_rows: int) -> None:
    raise ImportFileError(
        "too_many_rows", f"the file has more than {max_rows:,} data rows; split it into parts"
    )


def _records(
    rows: Iterator[list[str]], *, max_rows: int, blank_run_limit: int | None = None
) -> Iterator[SourceRow]:
    """Non-blank rows with their spreadsheet row numbers; refuses more than the row limit.

    With ``blank_run_limit``, that many blank rows in a row end the table (styled but empty
    rows at the bottom of a worksheet).
    """
    kept = blank_run = 0
    for number, cells in enumerate(rows, start=1):
        if not any(c.strip() for c in cells):
            blank_run += 1
            if blank_run_limit is not None and blank_run >= blank_run_limit:
                return
            continue
        blank_run = 0
        kept += 1
        if kept > max_rows + 1:
            _too_many(max_rows)
        yield SourceRow(number, cells)


def _split_header(records: Iterator[SourceRow]) -> tuple[list[str], list[SourceRow]]:
    first = next(records, None)
    if first is None:
        raise ImportFileError("empty_file", "the file has no rows")
    headers = [trim(c) for c in first.cells]
    while headers and not headers[-1]:
        headers.pop()
    if not headers:
        raise ImportFileError("missing_header", "the first row must name the columns")
    width = len(headers)
    rows = []
    for record in records:
        cells = record.cells
        if len(cells) < width:
            cells = cells + [""] * (width - len(cells))
        elif len(cells) > width:
            while len(cells) > width and not cells[-1].strip():
                cells = cells[:-1]
        rows.append(SourceRow(record.number, cells))
    if not rows:
        raise ImportFileError("no_data_rows", "the file has a header row but no data rows below it")
    return headers, rows
