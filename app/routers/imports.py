"""Imports (SPEC I1): upload a CSV/XLSX file of customers, contacts or orders, preview it (dry
run), follow the import job's progress, download the error report."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import BackgroundTasks, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import StreamingResponse

from app.config import Settings
from app.deps import CurrentPrincipal, SessionDep, SessionMakerDep, SettingsDep
from app.routers.common import ApiRouter, problems
from app.schemas.imports import (
    DuplicatePolicy,
    ImportEntity,
    ImportOut,
    ImportPage,
    ImportPreviewOut,
)
from app.services.importer import runs as service
from app.services.importer.source import parse_mapping
from app.services.imports import iter_csv

router = ApiRouter(tags=["imports"])

UPLOAD_PATH = "/api/v1/imports"
# Room for the multipart framing and the other form fields around the file.
MULTIPART_ALLOWANCE = 64 * 1024
REPORT_HEADERS = {
    "zh-CN": ["行号", "列", "字段", "问题", "原值", "代码"],
    "en": ["Row", "Column", "Field", "Problem", "Value", "Code"],
}


def upload_limits(settings: Settings) -> dict[str, int]:
    """Request body limits for the upload path (``BodySizeLimitMiddleware``): the file limit
    plus the form around it, so a larger upload is refused before it is read."""
    return {UPLOAD_PATH: settings.import_max_bytes + MULTIPART_ALLOWANCE}


IMPORT_DOC = """Upload a CSV (UTF-8, UTF-16 or GBK/GB18030; comma, semicolon or tab) or XLSX file as
`multipart/form-data`: `file`, `entity` (`customers`, `contacts`, `orders`), optionally `mapping`
(JSON `{"<column index from 0>": "<field key>"}`; without it the mapping the headers suggest),
`duplicate_policy` (`skip` — default —, `update` or `create`; orders are never repeated: a known
order number is skipped), `dry_run` and `sheet` (XLSX; the first sheet by default).

A file that cannot be imported (not CSV/XLSX, undecodable, no header, a required column missing,
a bad mapping, more rows than allowed) answers 422 (`import-file`, with `code`) and nothing is
stored; a file over `KEHU_IMPORT_MAX_BYTES` answers 413 before it is read.

`dry_run=true` answers 200 with what the import would do — format, encoding, headers, the mapping
used and the suggested one, counts (rows, create, update, skip, error) and the first row problems
and duplicates — and writes nothing. Otherwise the file is queued for the import job: 202 with the
import and its `Location`; follow `GET /imports/{id}`. The same file sent again by you with the
same entity, mapping and policy queues nothing: 200 with the first import.

Importing customers needs `customer.create` (and `customer.update` for `update`); contacts and
orders need `customer.update`. Duplicates of customers (SPEC B4): same phone (also a contact's),
same e-mail or a similar name, across all customers including pools and the recycle bin. An API
key importing orders needs `orders:write` too."""


@router.post(
    "/imports",
    response_model=ImportOut | ImportPreviewOut,
    status_code=202,
    responses={
        **problems(403),
        413: {
            "description": "The file is larger than allowed",
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
        },
        200: {
            "description": "The dry run's preview, or the earlier import of the same file",
            "model": ImportOut | ImportPreviewOut,
        },
        202: {"description": "Queued for the import job", "model": ImportOut},
    },
    description=IMPORT_DOC,
)
async def create_import(
    request: Request,
    response: Response,
    background: BackgroundTasks,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="The CSV or XLSX file.")],
    entity: Annotated[ImportEntity, Form()],
    duplicate_policy: Annotated[DuplicatePolicy, Form()] = "skip",
    mapping: Annotated[
        str | None,
        Form(max_length=20_000, description='JSON `{"0": "name", "3": "phone"}`.'),
    ] = None,
    dry_run: Annotated[bool, Form()] = False,
    sheet: Annotated[str | None, Form(max_length=100)] = None,
) -> Any:
    """Import a file of customers, contacts or orders (or preview it)."""
    service.check_rights(principal, entity, duplicate_policy)
    upload = service.Upload(
        data=await file.read(),
        file_name=(file.filename or "upload").strip()[:255] or "upload",
        entity=entity,
        mapping=parse_mapping(mapping),
        policy=duplicate_policy,
        sheet=sheet or None,
    )
    if dry_run:
        response.status_code = 200
        return ImportPreviewOut.model_validate(
            await service.preview(session, principal, settings, upload)
        )
    record, earlier = await service.submit(session, principal, settings, upload)
    response.headers["Location"] = f"{UPLOAD_PATH}/{record.id}"
    if earlier:
        response.status_code = 200
    else:
        # After the response (and so after the commit): the job finds the queued import.
        scheduler = getattr(request.app.state, "scheduler", None)
        if scheduler is not None:
            background.add_task(scheduler.wake, service.JOB_ID)
    return ImportOut.model_validate(service.import_view(record))


@router.get("/imports", response_model=ImportPage, responses=problems())
async def list_imports(
    principal: CurrentPrincipal,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> ImportPage:
    """Your imports, newest first."""
    rows, next_cursor = await service.list_imports(session, principal, cursor=cursor, limit=limit)
    return ImportPage(
        items=[ImportOut.model_validate(service.import_view(r)) for r in rows],
        next_cursor=next_cursor,
    )


@router.get("/imports/{import_id}", response_model=ImportOut, responses=problems(404))
async def get_import(import_id: int, principal: CurrentPrincipal, session: SessionDep) -> ImportOut:
    """One of your imports: status, progress and counts."""
    record = await service.get_import(session, principal, import_id)
    return ImportOut.model_validate(service.import_view(record))


@router.get(
    "/imports/{import_id}/errors",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "CSV (UTF-8 with BOM): row, column, field, problem, value, code.",
            "content": {"text/csv; charset=utf-8": {"schema": {"type": "string"}}},
        },
        **problems(404),
    },
)
async def download_import_errors(
    import_id: int,
    principal: CurrentPrincipal,
    session: SessionDep,
    maker: SessionMakerDep,
    lang: Annotated[str, Query(pattern="^(zh-CN|en)$")] = "zh-CN",
) -> StreamingResponse:
    """The rows of an import that were not imported or were skipped as duplicates, as CSV."""
    record = await service.get_import(session, principal, import_id)

    async def chunks() -> AsyncIterator[bytes]:
        first = True
        async for page in service.report_pages(maker, record.id):
            rows = (
                [e.row_number, e.column_name, e.field, e.message, e.value, e.code] for e in page
            )
            for chunk in iter_csv(rows, header=REPORT_HEADERS[lang] if first else None, bom=first):
                yield chunk
            first = False
        if first:  # no problems at all: the header alone
            for chunk in iter_csv([], header=REPORT_HEADERS[lang]):
                yield chunk

    return StreamingResponse(
        chunks(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="import-{record.id}-errors.csv"'},
    )
