"""The import wizard on a phone-sized Chromium (SPEC I1): a rep opens it from the customer list and
uploads a small customer CSV with one bad phone. The dry run suggests the mapping (changing a column
runs it again), the preview counts one error naming its row, the real upload carries an
Idempotency-Key, the progress reaches done with the rows created and one failed, the error report
downloads and the new customers are in the customer list. A file without the required column (the
wizard reached from the workbench this time) is refused with the server's 422 explained on the
first step.

The served app has no scheduler (tests/e2e/conftest.py: KEHU_SCHEDULER_ENABLED=false), so the test
runs the import job itself against the app's database once the upload is queued, as the scheduler
would (the upload only wakes a scheduler that exists).
"""

from __future__ import annotations

import asyncio
import random
import threading
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import expect

from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.services.importer import runs

pytestmark = pytest.mark.e2e

T = TypeVar("T")


def _in_thread(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion in a thread of its own: Playwright's sync API keeps an
    event loop marked running in the test's thread."""
    done: list[T] = []
    failed: list[BaseException] = []

    def work() -> None:
        try:
            done.append(asyncio.run(make()))
        except BaseException as exc:  # re-raised in the test's thread
            failed.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(120)
    if failed:
        raise failed[0]
    assert done, "the import job did not finish within 120 s"
    return done[0]


def run_import_job(database_url: str) -> int:
    """One run of the scheduler's import job against the served app's database."""

    async def run() -> int:
        engine = create_engine(database_url)
        try:
            # cleaning in a thread: no worker process forked from the test's thread
            settings = Settings(database_url=database_url, import_clean_processes=0)
            return await runs.process_queued_imports(create_sessionmaker(engine), settings)
        finally:
            await engine.dispose()

    return _in_thread(run)


def _phone() -> str:
    return f"139{random.randint(10_000_000, 99_999_999)}"


def _customers_csv(prefix: str, mail: str) -> tuple[bytes, list[str]]:
    """Three good customers and, in spreadsheet row 3, one whose phone is not a phone number."""
    good = [f"{prefix}甲贸易公司", f"{prefix}丙科技公司", f"{prefix}丁餐饮公司"]
    lines = [
        "客户名称,手机,邮箱,城市",
        f"{good[0]},{_phone()},jia-{mail}@example.com,上海",
        f"{prefix}乙坏号码公司,电话待补充,,北京",
        f"{good[1]},{_phone()},,杭州",
        f"{good[2]},{_phone()},,成都",
    ]
    return ("\n".join(lines) + "\n").encode("utf-8"), good


def _is_upload(response: Any) -> bool:
    return bool(response.url.endswith("/api/v1/imports") and response.request.method == "POST")


@pytest.mark.e2e
def test_rep_imports_customers_with_one_bad_row(
    rep1_page: Any, shot: Any, app_env: dict[str, str], tmp_path: Path
) -> None:
    page = rep1_page
    tag = uuid.uuid4().hex[:4]
    prefix = f"导入{tag}"
    content, good = _customers_csv(prefix, tag)

    page.get_by_test_id("customer-import").click()
    page.wait_for_url("**/imports/new?entity=customers")
    expect(page.get_by_test_id("import-entity-customers")).to_have_attribute("aria-checked", "true")
    page.get_by_test_id("import-file-input").set_input_files(
        files=[{"name": "新客户.csv", "mimeType": "text/csv", "buffer": content}]
    )
    expect(page.get_by_test_id("import-file")).to_contain_text("新客户.csv")
    shot(page, "imports-1-file")

    # step 2: the mapping the headers suggest, each column editable
    with page.expect_response(_is_upload) as first:
        page.get_by_test_id("import-next").click()
    assert first.value.status == 200
    assert first.value.json()["dry_run"] is True
    expect(page.get_by_test_id("import-wizard")).to_have_attribute("data-step", "mapping")
    rows = page.get_by_test_id("import-mapping-row")
    expect(rows).to_have_count(4)
    selects = page.get_by_test_id("import-mapping-select")
    for column, field in enumerate(["name", "phone", "email", "city"]):
        expect(selects.nth(column)).to_have_value(field)
    expect(rows.nth(1)).to_contain_text("自动匹配")
    expect(page.get_by_test_id("import-file-info")).to_contain_text("共 4 行")

    # leaving the city out runs the dry run again with the mapping picked
    with page.expect_response(_is_upload) as again:
        selects.nth(3).select_option("")
    # (Chromium does not show a multipart body with a file: the answer says what was read)
    assert again.value.json()["mapping"] == {"0": "name", "1": "phone", "2": "email"}
    expect(rows.nth(3)).to_contain_text("已修改")
    with page.expect_response(_is_upload):
        selects.nth(3).select_option("city")
    expect(selects.nth(3)).to_have_value("city")
    expect(page.get_by_test_id("import-checking")).to_have_count(0)
    shot(page, "imports-2-mapping", full_page=True)

    # step 3: the preview, one error naming its row
    page.get_by_test_id("import-next").click()
    expect(page.get_by_test_id("import-wizard")).to_have_attribute("data-step", "preview")
    expect(page.get_by_test_id("import-count-rows")).to_have_attribute("data-value", "4")
    expect(page.get_by_test_id("import-count-create")).to_have_attribute("data-value", "3")
    expect(page.get_by_test_id("import-count-error")).to_have_attribute("data-value", "1")
    errors = page.get_by_test_id("import-error")
    expect(errors).to_have_count(1)
    expect(errors.first).to_have_attribute("data-row", "3")
    expect(errors.first).to_contain_text("第 3 行 · 手机")
    expect(errors.first).to_contain_text("不是有效的电话号码")
    expect(errors.first).to_contain_text("电话待补充")
    start = page.get_by_test_id("import-start")
    expect(start).to_contain_text("3 行")
    shot(page, "imports-3-preview", full_page=True)

    # step 4: the real upload (with an Idempotency-Key), queued for the import job
    with page.expect_response(_is_upload) as queued:
        start.click()
    assert queued.value.status == 202
    assert queued.value.request.headers.get("idempotency-key")
    assert "dry_run" not in queued.value.json()
    import_id = queued.value.json()["id"]
    progress = page.get_by_test_id("import-progress")
    expect(progress).to_be_visible()
    expect(page.get_by_test_id("import-status")).to_have_text("排队中")
    shot(page, "imports-4-queued")

    assert run_import_job(app_env["KEHU_DATABASE_URL"]) >= 1

    # step 5: the progress reaches done (the page polls), with the counts
    expect(progress).to_have_attribute("data-status", "done", timeout=20_000)
    expect(page.get_by_test_id("import-wizard")).to_have_attribute("data-step", "result")
    expect(page.get_by_test_id("import-status")).to_have_text("已完成")
    expect(page.get_by_test_id("import-progress-bar")).to_have_attribute("data-percent", "100")
    expect(page.get_by_test_id("import-rows")).to_contain_text("已处理 4 / 4 行")
    expect(page.get_by_test_id("import-created")).to_have_attribute("data-value", "3")
    expect(page.get_by_test_id("import-failed")).to_have_attribute("data-value", "1")
    expect(page.get_by_test_id("import-done-summary")).to_contain_text("新建 3")
    shot(page, "imports-5-done", full_page=True)

    # the error report downloads with the session's token
    with page.expect_download() as download_info:
        page.get_by_test_id("import-download-errors").click()
    download = download_info.value
    assert download.suggested_filename == f"import-{import_id}-errors.csv"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    report = saved.read_text(encoding="utf-8-sig").splitlines()
    assert report[0].split(",")[:4] == ["行号", "列", "字段", "问题"]
    assert len(report) == 2, report
    assert report[1].startswith("3,") and "电话待补充" in report[1]

    # the new customers are in the list
    page.get_by_test_id("import-view-customers").click()
    page.wait_for_url("**/customers")
    page.get_by_test_id("customer-search").locator("input").fill(prefix)
    names = page.get_by_test_id("customer-row-name")
    expect(names).to_have_count(3)
    for name in good:
        expect(page.get_by_test_id("customer-row").filter(has_text=name)).to_have_count(1)
    expect(page.get_by_test_id("customer-row").filter(has_text="乙坏号码")).to_have_count(0)
    shot(page, "imports-6-customers")

    # and the import is in the history, done
    page.goto("/imports")
    row = page.locator(f"[data-testid=import-row][data-id='{import_id}']")
    expect(row).to_have_attribute("data-status", "done")
    expect(row).to_contain_text("新客户.csv")
    expect(row).to_contain_text("失败 1")
    shot(page, "imports-7-history")


@pytest.mark.e2e
def test_file_without_the_required_column_is_explained(rep1_page: Any, shot: Any) -> None:
    page = rep1_page
    # the way in from the workbench, past the history of imports
    page.get_by_test_id("tab-me").click()
    page.get_by_test_id("workbench-imports").click()
    page.wait_for_url("**/imports")
    page.get_by_test_id("imports-new").click()
    page.wait_for_url("**/imports/new")
    expect(page.get_by_test_id("import-entity-customers")).to_have_attribute("aria-checked", "true")
    page.get_by_test_id("import-file-input").set_input_files(
        files=[
            {
                "name": "缺列.csv",
                "mimeType": "text/csv",
                "buffer": "手机,城市\n13900000000,上海\n".encode(),
            }
        ]
    )
    with page.expect_response(_is_upload) as answer:
        page.get_by_test_id("import-next").click()
    assert answer.value.status == 422
    problem = page.get_by_test_id("import-problem")
    expect(problem).to_contain_text("文件无法导入")
    expect(page.get_by_test_id("import-problem-message")).to_contain_text("缺少必需的列：客户名称")
    expect(page.get_by_test_id("import-wizard")).to_have_attribute("data-step", "file")
    shot(page, "imports-missing-column")
