"""Formula-safe cells and the streaming CSV/XLSX writers, read back."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
from collections.abc import Iterator
from decimal import Decimal
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from app.services.imports import iter_csv, iter_xlsx, read_table, safe_cell, write_xlsx

HEADER = ["客户名称", "金额", "公式", "日期"]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("=SUM(A1)", "'=SUM(A1)"),
        ("+1", "'+1"),
        ("-1+1", "'-1+1"),
        ("@cmd", "'@cmd"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("-5", "'-5"),  # text that looks like a number is still text
        ("a=b", "a=b"),
        ("杭州青禾", "杭州青禾"),
        ("", ""),
    ],
)
def test_formula_like_text_gets_a_leading_apostrophe(value: str, text: str) -> None:
    assert safe_cell(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (-5, "-5"),
        (-1.5, "-1.5"),
        (Decimal("-1234.50"), "-1234.50"),
        (0.00001, "0.00001"),
        (3.0, "3"),
        (None, ""),
        (True, "true"),
        (dt.date(2026, 11, 23), "2026-11-23"),
        (dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.UTC), "2026-11-23T09:30:00+00:00"),
        (["VIP", "=x"], "VIP, =x"),  # joined first; the joined text does not start a formula
        (["=x", "VIP"], "'=x, VIP"),
    ],
)
def test_numbers_stay_numbers_and_other_values_become_text(value: object, text: str) -> None:
    assert safe_cell(value) == text


def rows() -> list[list[object]]:
    return [
        ["杭州青禾科技", Decimal("-1234.50"), "=SUM(A1)", dt.date(2026, 11, 23)],
        ["北京启明", -5, "@cmd", None],
        ['Acme, "Ltd"', 0.25, "-1+1", dt.datetime(2026, 11, 23, 9, 30)],
    ]


def test_csv_starts_with_a_bom_and_reads_back() -> None:
    data = b"".join(iter_csv(iter(rows()), header=HEADER))

    assert data.startswith(codecs.BOM_UTF8)
    text = data[len(codecs.BOM_UTF8) :].decode("utf-8")
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert parsed == [
        HEADER,
        ["杭州青禾科技", "-1234.50", "'=SUM(A1)", "2026-11-23"],
        ["北京启明", "-5", "'@cmd", ""],
        ['Acme, "Ltd"', "0.25", "'-1+1", "2026-11-23T09:30:00"],
    ]
    assert "\r\n" in text


def test_exported_csv_imports_again() -> None:
    table = read_table(b"".join(iter_csv(rows(), header=HEADER)))

    assert table.encoding == "utf-8-sig"
    assert table.headers == HEADER
    assert table.rows[0].cells[:2] == ["杭州青禾科技", "-1234.50"]


def test_csv_is_streamed_in_chunks_while_rows_are_produced() -> None:
    produced = 0

    def many() -> Iterator[list[object]]:
        nonlocal produced
        for i in range(20_000):
            produced += 1
            yield [f"客户{i}", i, "x" * 10]

    chunks = iter_csv(many())
    assert next(chunks) == codecs.BOM_UTF8
    first = next(chunks)

    assert produced < 20_000  # the first chunk left before all rows were read
    assert 64 * 1024 <= len(first.decode("utf-8")) < 70 * 1024
    rest = b"".join(chunks)
    lines = (first + rest).decode("utf-8").splitlines()
    assert len(lines) == 20_000
    assert lines[-1] == "客户19999,19999,xxxxxxxxxx"


def test_xlsx_keeps_types_and_stores_formula_text_as_text() -> None:
    buffer = io.BytesIO()
    shanghai = ZoneInfo("Asia/Shanghai")
    data = [*rows(), ["Z", 1, "ok", dt.datetime(2026, 11, 23, 1, 30, tzinfo=dt.UTC)]]

    write_xlsx(iter(data), buffer, header=HEADER, sheet_title="客户", tz=shanghai)

    book = openpyxl.load_workbook(io.BytesIO(buffer.getvalue()))
    sheet = book["客户"]
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[0] == HEADER
    assert values[1][:3] == ["杭州青禾科技", -1234.5, "=SUM(A1)"]
    assert values[1][3] == dt.datetime(2026, 11, 23)
    assert values[2][1] == -5
    assert values[4][3] == dt.datetime(2026, 11, 23, 9, 30)  # 01:30 UTC shown in Shanghai
    formula = sheet["C2"]
    assert formula.data_type == "s"  # text, not a formula
    assert formula.quotePrefix is True
    assert sheet["C3"].value == "@cmd" and sheet["C3"].quotePrefix is True
    assert sheet["A2"].quotePrefix is False
    assert sheet["B3"].data_type == "n"  # the negative number is still a number


def test_xlsx_has_no_formula_anywhere() -> None:
    buffer = io.BytesIO()
    write_xlsx(rows(), buffer, header=HEADER)

    book = openpyxl.load_workbook(io.BytesIO(buffer.getvalue()))

    assert all(c.data_type != "f" for row in book.active.iter_rows() for c in row)


def test_xlsx_drops_characters_xml_cannot_hold() -> None:
    buffer = io.BytesIO()
    write_xlsx([["bad\x00\x07text", "ok"]], buffer)

    book = openpyxl.load_workbook(io.BytesIO(buffer.getvalue()))

    assert book.active["A1"].value == "badtext"


def test_iter_xlsx_chunks_form_a_workbook_that_imports_again() -> None:
    data = b"".join(iter_xlsx(iter(rows()), header=HEADER))

    table = read_table(data)

    assert table.format == "xlsx"
    assert table.headers == HEADER
    assert table.rows[0].cells == ["杭州青禾科技", "-1234.5", "=SUM(A1)", "2026-11-23"]
    assert table.rows[2].cells[3] == "2026-11-23 09:30:00"
