"""Exports from the lists on a phone-sized Chromium (SPEC I2): the export action downloads the
list's records with the list's filters — fetched with the session's token, saved from a Blob under
the server's file name. The customer list as CSV holds the header and every customer shown (all of
them, and only the matching ones once searched); the contract list filtered by status comes as XLSX.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def _export(page: Any, trigger: str, choice: str, tmp_path: Path) -> tuple[str, bytes]:
    """Open the export sheet with `trigger`, pick `choice`; the downloaded file's name and bytes."""
    page.get_by_test_id(trigger).click()
    sheet = page.locator(".van-action-sheet")
    expect(sheet).to_be_visible()
    with page.expect_download() as info:
        sheet.locator(".van-action-sheet__item").filter(has_text=choice).click()
    download = info.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    return download.suggested_filename, saved.read_bytes()


def _csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


@pytest.mark.e2e
def test_customer_list_exports_as_csv_with_its_filters(
    rep1_page: Any, rep1_api: Any, shot: Any, tmp_path: Path
) -> None:
    page = rep1_page
    tag = uuid.uuid4().hex[:5]
    made = [rep1_api.create_customer(name=f"导出{tag}{suffix}有限公司") for suffix in ("甲", "乙")]

    page.reload()
    page.get_by_test_id("customer-row").first.wait_for()
    shown = page.get_by_test_id("customer-row-name").all_inner_texts()
    assert shown

    name, data = _export(page, "customer-export", "CSV", tmp_path)
    assert re.fullmatch(r"customers-\d{8}-\d{6}\.csv", name), name
    rows = _csv_rows(data)
    header = rows[0]
    assert header[:2] == ["客户ID", "客户名称"]
    names = {row[1] for row in rows[1:]}
    assert set(shown) <= names, set(shown) - names
    assert {c["name"] for c in made} <= names
    shot(page, "exports-customers")

    # searched: the file holds just what the list shows
    with page.expect_response(lambda r: "/api/v1/customers?" in r.url and "q=" in r.url):
        page.get_by_test_id("customer-search").locator("input").fill(f"导出{tag}")
    expect(page.get_by_test_id("customer-row")).to_have_count(2)
    shown = page.get_by_test_id("customer-row-name").all_inner_texts()
    _, data = _export(page, "customer-export", "CSV", tmp_path)
    rows = _csv_rows(data)
    assert rows[0] == header
    assert sorted(row[1] for row in rows[1:]) == sorted(shown) == sorted(c["name"] for c in made)
    ids = {row[0] for row in rows[1:]}
    assert ids == {str(c["id"]) for c in made}


@pytest.mark.e2e
def test_contract_list_exports_as_xlsx_with_its_status_filter(
    page: Any, login: Any, rep1_api: Any, tmp_path: Path
) -> None:
    login(page, "rep1", landing="today")
    page.goto("/contracts?status=draft")
    expect(page.get_by_test_id("contracts")).to_be_visible()
    with page.expect_request(lambda r: "/api/v1/exports/contracts?" in r.url) as request:
        name, data = _export(page, "contracts-export", "XLSX", tmp_path)
    query = request.value.url.split("?", 1)[1]
    assert "status=draft" in query and "format=xlsx" in query
    assert name.endswith(".xlsx")
    with zipfile.ZipFile(io.BytesIO(data)) as book:
        assert "xl/workbook.xml" in book.namelist()
