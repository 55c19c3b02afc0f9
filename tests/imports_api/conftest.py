"""Fixtures and helpers for the import API tests: an organisation, uploads, the job."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from app.models import Import, ImportRowError
from app.services.importer import runs
from tests.factories import auth, make_org

URL = "/api/v1/imports"


@pytest.fixture
async def org(maker):
    return await make_org(maker)


async def upload(
    client,
    app,
    user,
    content: bytes,
    *,
    entity: str = "customers",
    filename: str = "客户.csv",
    policy: str | None = None,
    mapping: dict[int, str] | None = None,
    dry_run: bool = False,
    headers: dict[str, str] | None = None,
    sheet: str | None = None,
):
    data: dict[str, Any] = {"entity": entity}
    if policy is not None:
        data["duplicate_policy"] = policy
    if mapping is not None:
        data["mapping"] = json.dumps({str(k): v for k, v in mapping.items()})
    if dry_run:
        data["dry_run"] = "true"
    if sheet is not None:
        data["sheet"] = sheet
    return await client.post(
        URL,
        data=data,
        files={"file": (filename, content, "text/csv")},
        headers={**(auth(app, user) if user is not None else {}), **(headers or {})},
    )


async def run_job(app) -> int:
    """What the scheduler's import job does on its tick."""
    return await runs.process_queued_imports(app.state.sessionmaker, app.state.settings)


async def count(maker, model, *where) -> int:
    async with maker() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)))


async def imports_stored(maker) -> int:
    return await count(maker, Import)


async def report_rows(maker, import_id: int) -> list[ImportRowError]:
    async with maker() as session:
        rows = await session.scalars(
            select(ImportRowError)
            .where(ImportRowError.import_id == import_id)
            .order_by(ImportRowError.id)
        )
        return list(rows.all())


def csv_bytes(text: str, encoding: str = "utf-8") -> bytes:
    return text.replace("\n", "\r\n").encode(encoding)
