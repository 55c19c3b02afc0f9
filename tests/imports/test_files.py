"""Reading uploads: encodings, delimiters, XLSX, and every way a file is refused."""

from __future__ import annotations

import codecs
import datetime as dt
import io
import zipfile
from typing import Any

import openpyxl
import pytest
from openpyxl.styles import Font

from app.services.imports import ImportFileError, check_mapping, read_table, suggest_mapping
from app.services.imports.files import detect_format
from tests.imports.builders import xlsx_bytes

CHINESE_CSV = (
    "客户名称,手机,邮箱,省份,城市\r\n"
    "杭州青禾科技有限公司,138 1234 5678,qh@example.com,浙江,杭州\r\n"
    "北京启明星辰,+86 139-0000-1111,,北京,北京\r\n"
)


def refused(data: bytes, filename: str | None = None, **kw: Any) -> ImportFileError:
    with pytest.raises(ImportFileError) as caught:
        read_table(data, filename, **kw)
    return caught.value


def test_gbk_csv_with_chinese_headers_reads_correctly() -> None:
    table = read_table(CHINESE_CSV.encode("gbk"), "客户.csv")

    assert table.format == "csv"
    assert table.encoding == "gb18030"
    assert table.headers == ["客户名称", "手机", "邮箱", "省份", "城市"]
    assert [r.cells[0] for r in table.rows] == ["杭州青禾科技有限公司", "北京启明星辰"]
    assert table.rows[1].cells == ["北京启明星辰", "+86 139-0000-1111", "", "北京", "北京"]


def test_utf8_bom_csv_loses_the_bom() -> None:
    table = read_table(codecs.BOM_UTF8 + CHINESE_CSV.encode("utf-8"))

    assert table.encoding == "utf-8-sig"
    assert table.headers[0] == "客户名称"  # not "\ufeff客户名称"
    assert table.rows[0].cells[3] == "浙江"


def test_plain_utf8_csv() -> None:
    table = read_table(CHINESE_CSV.encode("utf-8"))

    assert table.encoding == "utf-8"
    assert len(table.rows) == 2


def test_utf16_text_with_bom_from_excel_unicode_text() -> None:
    data = CHINESE_CSV.replace(",", "\t").encode("utf-16")

    table = read_table(data)

    assert table.encoding == "utf-16"
    assert table.delimiter == "\t"
    assert table.rows[0].cells[0] == "杭州青禾科技有限公司"


def test_semicolon_csv_is_sniffed_even_with_commas_in_values() -> None:
    data = b"Name;Amount;City\nAcme, Inc.;1,5;Berlin\nBeta;2,25;Paris\n"

    table = read_table(data)

    assert table.delimiter == ";"
    assert table.headers == ["Name", "Amount", "City"]
    assert table.rows[0].cells == ["Acme, Inc.", "1,5", "Berlin"]


def test_tab_separated_file() -> None:
    table = read_table(b"name\tphone\nA\t13812345678\n")

    assert table.delimiter == "\t"
    assert table.rows[0].cells == ["A", "13812345678"]


@pytest.mark.parametrize("delimiter", [";", "\t", ","])
def test_excel_sep_hint_line_sets_the_delimiter(delimiter: str) -> None:
    data = f"sep={delimiter}\r\nname{delimiter}city\r\nA,B;C{delimiter}D\r\n".encode()

    table = read_table(data)

    assert table.delimiter == delimiter
    assert table.headers == ["name", "city"]
    assert table.rows[0].cells[-1] == "D"
    assert table.rows[0].cells[0] == {";": "A,B", "\t": "A,B;C", ",": "A"}[delimiter]


def test_quoted_cells_keep_delimiters_and_line_breaks() -> None:
    data = b'name,notes\n"Acme, Ltd","line one\nline two"\nBeta,x\n'

    table = read_table(data)

    assert table.rows[0].cells == ["Acme, Ltd", "line one\nline two"]
    assert table.rows[1].cells == ["Beta", "x"]


def test_blank_rows_are_skipped_but_row_numbers_match_the_spreadsheet() -> None:
    table = read_table(b"name,city\n\nA,X\n,\nB\n")

    assert [(r.number, r.cells) for r in table.rows] == [(3, ["A", "X"]), (5, ["B", ""])]


def test_headers_are_trimmed_and_trailing_empty_headers_dropped() -> None:
    table = read_table(b" name , city ,,\nA,B,,\n")

    assert table.headers == ["name", "city"]
    assert table.rows[0].cells == ["A", "B"]


def test_xlsx_values_are_displayed_strings_and_dates_iso() -> None:
    data = xlsx_bytes(
        [
            ["客户名称", "手机", "生日", "下单时间", "金额", "数量", "VIP"],
            [
                "杭州青禾",
                13812345678,
                dt.date(1990, 5, 1),
                dt.datetime(2026, 11, 23, 14, 30),
                1234.5,
                3.0,
                True,
            ],
            [None, None, None, None, None, None, None],
            ["北京启明", "139 0000 1111", None, None, 0.00001, 7, False],
        ]
    )

    table = read_table(data, "export.csv")  # the name lies; the content decides

    assert table.format == "xlsx"
    assert table.sheet == "客户"
    assert table.headers == ["客户名称", "手机", "生日", "下单时间", "金额", "数量", "VIP"]
    first, second = table.rows
    assert first.number == 2
    assert first.cells == [
        "杭州青禾",
        "13812345678",
        "1990-05-01",
        "2026-11-23 14:30:00",
        "1234.5",
        "3",
        "TRUE",
    ]
    assert second.number == 4
    assert second.cells[:5] == ["北京启明", "139 0000 1111", "", "", "0.00001"]
    assert second.cells[5:] == ["7", "FALSE"]


def test_xlsx_picks_a_sheet_by_name() -> None:
    data = xlsx_bytes([["名称"], ["first"]], extra_sheets=2)

    assert read_table(data).rows[0].cells == ["first"]
    assert read_table(data, sheet="Other1").rows[0].cells == ["second sheet 1"]
    error = refused(data, sheet="Nope")
    assert error.code == "missing_header"
    assert "Other0" in error.message


def test_xlsx_row_limit() -> None:
    data = xlsx_bytes([["名称"], *[[f"c{i}"] for i in range(6)]])

    assert len(read_table(data, max_rows=6).rows) == 6
    assert refused(data, max_rows=5).code == "too_many_rows"


def test_csv_row_limit_counts_data_rows_only() -> None:
    data = ("name\n" + "".join(f"c{i}\n" for i in range(10))).encode()

    assert len(read_table(data, max_rows=10).rows) == 10
    error = refused(data, max_rows=9)
    assert error.code == "too_many_rows"
    assert "9" in error.message


def test_file_size_limit() -> None:
    assert refused(b"name\n" + b"x\n" * 100, max_bytes=50).code == "file_too_large"


def test_empty_file_is_refused() -> None:
    assert refused(b"").code == "empty_file"
    assert refused(b" \r\n\n").code == "empty_file"
    assert refused(codecs.BOM_UTF8).code == "empty_file"


def test_csv_with_only_a_header_row_is_refused() -> None:
    error = refused("客户名称,手机\r\n".encode("gbk"))

    assert error.code == "no_data_rows"
    assert "header" in error.message


def test_leading_blank_rows_are_skipped_before_the_header() -> None:
    table = read_table(b",,\n\nname,city\nA,B\n")

    assert table.headers == ["name", "city"]
    assert table.rows[0].number == 4


def test_a_header_row_of_invisible_characters_is_refused() -> None:
    assert refused("\u200b,\u3000\nA,B\n".encode()).code == "missing_header"


def test_header_without_a_required_column_is_refused_by_the_mapping_check() -> None:
    table = read_table("手机,邮箱,城市\n13812345678,a@b.cn,杭州\n".encode())
    mapping = suggest_mapping(table.headers, "customers")

    with pytest.raises(ImportFileError) as caught:
        check_mapping(table.headers, "customers", mapping)

    assert caught.value.code == "missing_header"
    assert "客户名称" in caught.value.message


@pytest.mark.parametrize(
    ("data", "hint"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "PNG"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, ".xls"),
        (b"<html><body><table><tr><td>x</td></tr></table></body></html>", "web page"),
        (b"name,city\nA\x00B,\x00\x01\x02\n", "binary"),
    ],
)
def test_files_that_are_not_csv_or_xlsx_are_refused(data: bytes, hint: str) -> None:
    error = refused(data, "customers.xls")

    assert error.code == "unsupported_format"
    assert hint in error.message


def test_an_encrypted_xlsx_is_told_apart_from_an_old_xls() -> None:
    ole2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100

    assert "password" in refused(ole2, "客户.xlsx").message
    assert ".xls workbook" in refused(ole2, "客户.xls").message


def test_a_zip_that_is_not_a_workbook_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hello")

    error = refused(buffer.getvalue(), "data.xlsx")

    assert error.code == "unsupported_format"
    assert "ZIP" in error.message


def test_a_damaged_workbook_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/workbook.xml", "<not a workbook")

    assert refused(buffer.getvalue()).code == "unreadable_file"


def test_undecodable_bytes_name_the_encoding_problem_and_the_line() -> None:
    data = "name,city\nAcme,杭州\n".encode() + b"Beta,\xff\xfe\x80\n"

    error = refused(data)

    assert error.code == "bad_encoding"
    assert error.line == 3
    assert "line 3" in error.message
    assert "UTF-8" in error.message and "GBK" in error.message


def test_detect_format_goes_by_content_not_name() -> None:
    assert detect_format(xlsx_bytes([["a"], ["b"]]), "list.csv") == "xlsx"
    assert detect_format(b"a,b\n1,2\n", "list.xlsx") == "csv"


def test_error_becomes_a_422_problem_with_its_code() -> None:
    error = refused(b"name\nx\n", max_rows=0)

    problem = error.problem()

    assert problem["status"] == 422
    assert problem["code"] == "too_many_rows"
    assert problem["detail"] == error.message


def test_xlsx_with_formatted_empty_rows_below_the_data_is_read() -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["名称"])
    sheet.append(["杭州青禾"])
    # Formatting a whole column declares a worksheet a million rows tall; here 200,000.
    sheet["A200000"].font = Font(bold=True)
    buffer = io.BytesIO()
    book.save(buffer)

    table = read_table(buffer.getvalue(), max_rows=10)

    assert [r.cells for r in table.rows] == [["杭州青禾"]]
