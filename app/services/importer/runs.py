"""Uploads, dry runs, import records, error reports and the import job (SPEC I1).

An upload is checked at once — file size, format, encoding, header and mapping — and refused
with a 422 problem (413 for size) storing nothing; a dry run then plans every row and answers
what the import would do, writing nothing. A real upload stores the file in an ``imports`` row
(``queued``) and answers 202; the same user sending the same file the same way again (same
SHA-256, entity, mapping and policy) gets the first import back instead.

The import job (``process_queued_imports``, run by the scheduler's leader) claims a queued
import with a conditional UPDATE (``lease_token``; a running import whose heartbeat is older
than ``KEHU_IMPORT_STALE_SECONDS`` is taken over — its process died) and takes the file
``KEHU_IMPORT_CHUNK_ROWS`` rows at a time through a pipeline: a worker process cleans the next
chunk while this one is planned — owners, tags, customers, products and duplicates resolved in
a few set-based queries per chunk, never one per row, earlier rows of the file remembered — and
written. Each chunk's records, its report rows and the import's counts commit in one
transaction, chunks in file order (``KEHU_IMPORT_WRITERS`` of them in flight on PostgreSQL), so
the counts never run ahead of the data and a resumed import starts after the last committed
chunk. A chunk that cannot be written rolls back whole; its rows count as failed, with the
reason in the report, and the import goes on with the next chunk. A dry run is the same
pipeline without the writes, so it answers what the import will do.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import gc
import hashlib
import json
import logging
import multiprocessing
import uuid
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import undefer

from app import access
from app.access import Principal, load_principal
from app.config import Settings
from app.db import READ_ONLY, transaction
from app.errors import DomainError, Forbidden, NotFound, PayloadTooLarge
from app.models import Import, ImportRowError
from app.models.base import utcnow
from app.services import api_keys, audit, config, notifications
from app.services.importer import bulk, source
from app.services.importer.contacts import ContactImporter
from app.services.importer.customers import CustomerImporter
from app.services.importer.orders import OrderImporter
from app.services.importer.plan import (
    ChunkOutcome,
    EntityImporter,
    Policy,
    RowPlan,
    WriteContext,
    columns_of,
    processing_order,
    split,
)
from app.services.importer.source import CleanRow, ParsedFile
from app.services.imports import (
    CustomFieldSpec,
    Entity,
    ImportFileError,
    RowCleaner,
    RowError,
    SourceRow,
    import_fields,
)
from app.services.imports.mapping import required_groups
from app.services.pagination import fetch_page

log = logging.getLogger("kehu.imports")

JOB_ID = "run_imports"
# Row problems and duplicates a dry run lists.
PREVIEW_SAMPLE = 100
# Report rows per read when the error report is downloaded.
REPORT_PAGE = 5000
MAX_TEXT = 500


@dataclass(frozen=True)
class Upload:
    data: bytes
    file_name: str
    entity: Entity
    mapping: dict[int, str] | None
    policy: Policy
    sheet: str | None = None


def check_rights(principal: Principal, entity: Entity, policy: Policy) -> None:
    """Importing customers needs ``customer.create`` (and ``customer.update`` to update
    duplicates); contacts and orders are written on customers one may change, so they need
    ``customer.update``. An API key importing orders needs ``orders:write`` as well."""
    needed = ["customer.create"] if entity == "customers" else ["customer.update"]
    if entity == "customers" and policy == "update":
        needed.append("customer.update")
    for permission in needed:
        if not principal.can(permission):
            raise Forbidden(f"importing {entity} requires permission {permission}")
    if entity == "orders":
        api_keys.check_key_scope(principal, "orders", "POST")


def check_field_levels(principal: Principal, entity: Entity, mapping: Mapping[int, str]) -> None:
    """A file may not write personal fields the caller's roles do not let it edit (SPEC J4):
    403 naming them, before anything is read further."""
    if entity == "orders":
        return
    targets = {f.key: f.target for f in import_fields(entity)}
    written = [targets[key] for key in mapping.values() if key in targets]
    keys = access.CUSTOMER_KEYS if entity == "customers" else access.CONTACT_KEYS
    access.check_editable(principal, None, access.personal_fields_in(written, keys))


def _importer(entity: str, policy: Policy, mapping: Mapping[int, str]) -> EntityImporter:
    columns = columns_of(mapping)
    if entity == "customers":
        return CustomerImporter(policy, columns)
    if entity == "contacts":
        return ContactImporter(policy, columns)
    return OrderImporter(policy, columns)


async def _custom_fields(session: AsyncSession) -> list[CustomFieldSpec]:
    return [
        CustomFieldSpec(d.key, d.label, d.type, list(d.options or []), d.required)
        for d in await config.list_custom_fields(session)
    ]


async def _parse(
    data: bytes,
    file_name: str,
    entity: Entity,
    mapping: Mapping[int, str] | None,
    specs: Sequence[CustomFieldSpec],
    settings: Settings,
    sheet: str | None,
) -> ParsedFile:
    if len(data) > settings.import_max_bytes:
        raise PayloadTooLarge(f"files are limited to {settings.import_max_bytes} bytes")
    return await asyncio.to_thread(
        source.read_upload,
        data,
        file_name,
        entity,
        mapping,
        specs,
        max_rows=settings.import_max_rows,
        max_bytes=settings.import_max_bytes,
        sheet=sheet,
    )


_clean_pool: concurrent.futures.ProcessPoolExecutor | None = None
_no_processes = False


async def _clean(
    cleaner: RowCleaner, rows: Sequence[tuple[int, SourceRow]], processes: int
) -> list[CleanRow]:
    """Clean rows in the shared worker processes (started on first use as fresh interpreters,
    ``spawn``: nothing of this process — connections, threads — is inherited), or in a thread
    when ``processes`` is 0 or worker processes cannot be started here."""
    global _clean_pool, _no_processes
    if processes > 0 and not _no_processes:
        loop = asyncio.get_running_loop()
        try:
            if _clean_pool is None:
                _clean_pool = concurrent.futures.ProcessPoolExecutor(
                    max_workers=processes, mp_context=multiprocessing.get_context("spawn")
                )
            return await loop.run_in_executor(_clean_pool, source.clean_chunk, cleaner, list(rows))
        except (RuntimeError, OSError, concurrent.futures.process.BrokenProcessPool) as error:
            # E.g. a main module without the ``if __name__ == "__main__"`` guard that ``spawn``
            # needs, or a worker killed: clean in a thread from now on.
            log.warning("import cleaning falls back to a thread: %r", error)
            _no_processes = True
            if _clean_pool is not None:
                _clean_pool.shutdown(wait=False, cancel_futures=True)
                _clean_pool = None
    return await asyncio.to_thread(source.clean_chunk, cleaner, rows)


@contextlib.contextmanager
def _long_lived_rows() -> Iterator[None]:
    """Keep the cyclic garbage collector off the rows of a file while it is imported.

    100,000 rows are a few million objects that live until the end; every full collection
    would walk them all again, which made a large file's import several times slower. They are
    moved out of the collector's view (``gc.freeze``) as they are made, chunk by chunk, and
    handed back at the end (``gc.unfreeze``); reference counting frees everything as usual.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


async def planned_chunks(
    importer: EntityImporter,
    principal: Principal,
    parsed: ParsedFile,
    cleaner: RowCleaner,
    *,
    chunk_rows: int,
    start: int = 0,
    session: AsyncSession | None = None,
    maker: async_sessionmaker[AsyncSession] | None = None,
    processes: int = 0,
) -> AsyncGenerator[list[RowPlan], None]:
    """The file's rows from ``start`` (in processing order), cleaned and planned a chunk at a
    time. The next chunk is cleaned meanwhile — in a worker process (``processes``; else a
    thread) — so the CPU-bound cleaning runs beside this process's planning and writing and the
    database's work. Plans run in ``session``, or each in a short read-only transaction of
    ``maker``'s."""
    ordered = processing_order(parsed.table.rows, importer.group_of)[start:]
    pieces = list(split(ordered, chunk_rows, importer.group_of))

    def clean(i: int) -> asyncio.Task[list[CleanRow]]:
        return asyncio.create_task(_clean(cleaner, pieces[i], processes))

    pending = clean(0) if pieces else None
    try:
        for i in range(len(pieces)):
            assert pending is not None
            rows = await pending
            pending = clean(i + 1) if i + 1 < len(pieces) else None
            if session is not None:
                await bulk.custom_plans(session)
                plans = await importer.plan(session, principal, rows)
            else:
                assert maker is not None
                async with maker() as reader:
                    await reader.connection(execution_options=READ_ONLY)
                    await bulk.custom_plans(reader)
                    plans = await importer.plan(reader, principal, rows)
            gc.freeze()  # see _long_lived_rows
            yield plans
    finally:
        if pending is not None:
            pending.cancel()  # the chunk cleaned ahead is not wanted any more


def _mapping_json(mapping: Mapping[int, str]) -> dict[str, str]:
    return {str(column): key for column, key in sorted(mapping.items())}


def _error_out(row: CleanRow, error: RowError, headers: Sequence[str]) -> dict[str, Any]:
    column = error.column
    return {
        "row": row.number,
        "column": column,
        "column_name": headers[column] if column is not None and column < len(headers) else None,
        "field": error.field,
        "message": error.message,
        "value": error.value,
        "code": error.code,
    }


# --- upload and dry run ----------------------------------------------------------------------


async def preview(
    session: AsyncSession, principal: Principal, settings: Settings, upload: Upload
) -> dict[str, Any]:
    """What importing the file would do (a dry run): nothing is written."""
    check_rights(principal, upload.entity, upload.policy)
    specs = await _custom_fields(session)
    parsed = await _parse(
        upload.data,
        upload.file_name,
        upload.entity,
        upload.mapping,
        specs,
        settings,
        upload.sheet,
    )
    check_field_levels(principal, upload.entity, parsed.mapping)
    importer = _importer(upload.entity, upload.policy, parsed.mapping)
    tz = ZoneInfo(settings.business_timezone)
    cleaner = source.make_cleaner(parsed, upload.entity, specs, tz)
    headers = parsed.table.headers
    actions: Counter[str] = Counter()
    errors: list[dict[str, Any]] = []
    duplicates: list[dict[str, Any]] = []
    stream = planned_chunks(
        importer,
        principal,
        parsed,
        cleaner,
        chunk_rows=settings.import_chunk_rows,
        session=session,
        processes=settings.import_clean_processes,
    )
    with _long_lived_rows():
        async with contextlib.aclosing(stream):
            async for plans in stream:
                actions.update(p.action for p in plans)
                for p in plans:
                    if p.action == "fail" and len(errors) < PREVIEW_SAMPLE:
                        errors += [_error_out(p.row, e, headers) for e in p.notes]
                    if (
                        p.duplicate_of is not None
                        and p.action in ("skip", "update")
                        and len(duplicates) < PREVIEW_SAMPLE
                    ):
                        d = p.duplicate_of
                        duplicates.append(
                            {
                                "row": p.row.number,
                                "matched_on": d.get("matched_on", []),
                                "action": p.action,
                                "customer_id": d.get("customer_id"),
                                "customer_name": d.get("customer_name"),
                                "contact_id": d.get("contact_id"),
                                "similarity": d.get("similarity"),
                                "same_as_row": d.get("row"),
                            }
                        )
    errors = sorted(errors, key=lambda e: e["row"])[:PREVIEW_SAMPLE]
    duplicates.sort(key=lambda d: d["row"])
    required = {k for group in required_groups(upload.entity, specs) for k in group}
    table = parsed.table
    return {
        "dry_run": True,
        "entity": upload.entity,
        "file_name": upload.file_name,
        "file_size": len(upload.data),
        "file_format": table.format,
        "encoding": table.encoding,
        "delimiter": table.delimiter,
        "sheet": table.sheet,
        "headers": headers,
        "mapping": _mapping_json(parsed.mapping),
        "suggested_mapping": _mapping_json(parsed.suggested),
        "fields": [
            {"key": f.key, "label": f.label, "label_en": f.label_en, "required": f.key in required}
            for f in import_fields(upload.entity, specs)
        ],
        "duplicate_policy": upload.policy,
        "counts": {
            "rows": len(parsed.table.rows),
            "create": actions["create"],
            "update": actions["update"],
            "skip": actions["skip"],
            "error": actions["fail"],
        },
        "errors": errors,
        "duplicates": duplicates,
    }


async def _same_file(session: AsyncSession, user_id: int, dedupe_key: str) -> Import | None:
    return await session.scalar(
        select(Import).where(
            Import.created_by_id == user_id,
            Import.dedupe_key == dedupe_key,
            Import.status != "failed",
        )
    )


async def submit(
    session: AsyncSession, principal: Principal, settings: Settings, upload: Upload
) -> tuple[Import, bool]:
    """Queue the file for the import job; (the import, True) when the same user queued the
    same file the same way before — nothing new is queued then."""
    check_rights(principal, upload.entity, upload.policy)
    specs = await _custom_fields(session)
    parsed = await _parse(
        upload.data,
        upload.file_name,
        upload.entity,
        upload.mapping,
        specs,
        settings,
        upload.sheet,
    )
    check_field_levels(principal, upload.entity, parsed.mapping)
    digest = hashlib.sha256(upload.data).hexdigest()
    mapping = _mapping_json(parsed.mapping)
    identity = json.dumps(
        [digest, upload.entity, mapping, upload.policy, parsed.table.sheet], ensure_ascii=False
    )
    dedupe_key = hashlib.sha256(identity.encode()).hexdigest()
    earlier = await _same_file(session, principal.user_id, dedupe_key)
    if earlier is not None:
        return earlier, True
    table = parsed.table
    record = Import(
        entity=upload.entity,
        status="queued",
        file_name=upload.file_name[:255],
        file_size=len(upload.data),
        file_sha256=digest,
        file_format=table.format,
        encoding=table.encoding,
        sheet=table.sheet,
        mapping=mapping,
        duplicate_policy=upload.policy,
        dedupe_key=dedupe_key,
        rows_total=len(table.rows),
        rows_done=0,
        created=0,
        updated=0,
        skipped=0,
        failed=0,
        content=upload.data,
        created_by_id=principal.user_id,
    )
    try:
        async with session.begin_nested():
            session.add(record)
            await session.flush()
    except IntegrityError:
        # The same file arrived twice at once: the partial unique index let one in.
        earlier = await _same_file(session, principal.user_id, dedupe_key)
        if earlier is None:
            raise
        return earlier, True
    return record, False


# --- reading ---------------------------------------------------------------------------------


def progress_of(record: Import) -> float:
    if record.rows_total <= 0:
        return 1.0 if record.status == "done" else 0.0
    return round(min(1.0, record.rows_done / record.rows_total), 4)


async def get_import(session: AsyncSession, principal: Principal, import_id: int) -> Import:
    """One of the caller's own imports; any other answers 404."""
    record = await session.scalar(
        select(Import).where(Import.id == import_id, Import.created_by_id == principal.user_id)
    )
    if record is None:
        raise NotFound(f"import {import_id} not found")
    if record.entity == "orders":
        api_keys.check_key_scope(principal, "orders", "GET")
    return record


async def list_imports(
    session: AsyncSession, principal: Principal, *, cursor: str | None, limit: int
) -> tuple[list[Import], str | None]:
    """The caller's imports, newest first (an API key without orders:read sees no orders)."""
    conditions = [Import.created_by_id == principal.user_id]
    if principal.key_scopes is not None and "orders:read" not in principal.key_scopes:
        conditions.append(Import.entity != "orders")
    return await fetch_page(
        session, Import, conditions, Import.created_at, descending=True, cursor=cursor, limit=limit
    )


async def report_pages(
    maker: async_sessionmaker[AsyncSession], import_id: int
) -> AsyncIterator[list[ImportRowError]]:
    """The error report's rows in file order, a page per short read-only transaction."""
    after = 0
    while True:
        async with maker() as session:
            await session.connection(execution_options=READ_ONLY)
            page = list(
                (
                    await session.scalars(
                        select(ImportRowError)
                        .where(ImportRowError.import_id == import_id, ImportRowError.id > after)
                        .order_by(ImportRowError.id)
                        .limit(REPORT_PAGE)
                    )
                ).all()
            )
        if not page:
            return
        yield page
        if len(page) < REPORT_PAGE:
            return
        after = page[-1].id


# --- the job ---------------------------------------------------------------------------------


class LeaseLost(Exception):
    """Another job run took the import over (this one was presumed dead)."""


@dataclass(frozen=True)
class Claim:
    import_id: int
    token: str


def _claimable(now: dt.datetime, settings: Settings) -> Any:
    stale = now - dt.timedelta(seconds=settings.import_stale_seconds)
    return or_(
        Import.status == "queued",
        and_(
            Import.status == "running",
            or_(Import.heartbeat_at.is_(None), Import.heartbeat_at < stale),
        ),
    )


async def claim_next(maker: async_sessionmaker[AsyncSession], settings: Settings) -> Claim | None:
    """Take the oldest queued (or abandoned) import, atomically: of two runs racing for one,
    the conditional UPDATE lets exactly one through."""
    for _ in range(5):
        now = utcnow()
        async with transaction(maker) as session:
            row = (
                await session.execute(
                    select(Import.id, Import.started_at)
                    .where(_claimable(now, settings))
                    .order_by(Import.id)
                    .limit(1)
                )
            ).first()
            if row is None:
                return None
            token = uuid.uuid4().hex
            result = await session.execute(
                update(Import)
                .where(Import.id == row.id, _claimable(now, settings))
                .values(
                    status="running",
                    lease_token=token,
                    heartbeat_at=now,
                    started_at=row.started_at or now,
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                return Claim(row.id, token)
    return None


async def process_queued_imports(
    maker: async_sessionmaker[AsyncSession], settings: Settings
) -> int:
    """Run every import waiting (and any abandoned one); returns how many were run."""
    count = 0
    while (claim := await claim_next(maker, settings)) is not None:
        count += 1
        try:
            await _process(maker, settings, claim)
        except LeaseLost:
            log.warning("import %s was taken over by another job run", claim.import_id)
        except Exception:
            log.exception("import %s stopped by an unexpected error", claim.import_id)
            try:
                await _finish(
                    maker,
                    claim,
                    "failed",
                    error="an unexpected error stopped the import; it has been logged",
                )
            except Exception:
                log.exception("import %s could not be marked failed", claim.import_id)
    return count


async def _process(
    maker: async_sessionmaker[AsyncSession], settings: Settings, claim: Claim
) -> None:
    async with maker() as session:
        await session.connection(execution_options=READ_ONLY)
        record = (
            await session.scalars(
                select(Import).options(undefer(Import.content)).where(Import.id == claim.import_id)
            )
        ).one()
        principal = await load_principal(session, record.created_by_id)
        specs = await _custom_fields(session)
        dialect = session.get_bind().dialect.name
    if principal is None:
        await _finish(
            maker, claim, "failed", error="the account that uploaded the file is inactive"
        )
        return
    if record.content is None:
        await _finish(maker, claim, "failed", error="the file is no longer stored; upload it again")
        return
    entity: Entity = record.entity  # type: ignore[assignment]
    policy: Policy = record.duplicate_policy  # type: ignore[assignment]
    mapping = {int(column): key for column, key in record.mapping.items()}
    try:
        parsed = await asyncio.to_thread(
            source.read_upload,
            record.content,
            record.file_name,
            entity,
            mapping,
            specs,
            max_rows=max(settings.import_max_rows, record.rows_total),
            max_bytes=max(settings.import_max_bytes, len(record.content)),
            sheet=record.sheet if record.file_format == "xlsx" else None,
        )
    except ImportFileError as error:
        # E.g. a required custom field was defined after the upload.
        await _finish(maker, claim, "failed", error=error.message)
        return
    importer = _importer(entity, policy, parsed.mapping)
    tz = ZoneInfo(settings.business_timezone)
    cleaner = source.make_cleaner(parsed, entity, specs, tz)
    ctx = WriteContext(principal, utcnow())
    stream = planned_chunks(
        importer,
        principal,
        parsed,
        cleaner,
        chunk_rows=settings.import_chunk_rows,
        start=record.rows_done,
        maker=maker,
        processes=settings.import_clean_processes,
    )
    # SQLite has one writer at a time anyway.
    writers = settings.import_writers if dialect == "postgresql" else 1
    with _long_lived_rows():
        assigned, changed = await _write_all(
            maker, claim, importer, ctx, stream, parsed.table.headers, writers
        )
    await _finish(maker, claim, "done", principal=principal, assigned=assigned, changed=changed)


def _reason(error: Exception) -> str:
    if isinstance(error, DomainError):
        text = error.detail or error.title
        if error.errors:
            text += ": " + "; ".join(str(e.get("msg", "")) for e in error.errors[:3])
    elif isinstance(error, SQLAlchemyError):
        orig = getattr(error, "orig", None)
        text = f"{type(orig or error).__name__}: {str(orig or error).splitlines()[0]}"
    else:
        text = type(error).__name__
    return text[:300]


async def _write_chunk(
    maker: async_sessionmaker[AsyncSession],
    claim: Claim,
    importer: EntityImporter,
    ctx: WriteContext,
    chunk: Sequence[RowPlan],
    headers: Sequence[str],
    previous: asyncio.Event | None = None,
) -> ChunkOutcome:
    """Write one chunk in its own transaction. With ``previous`` (the previous chunk's commit),
    the rows go in at once but the commit waits for it, so chunks commit in order; a chunk that
    updates records waits before it starts (it may update what the previous chunk made)."""
    fails = [p for p in chunk if p.action == "fail"]
    skips = [p for p in chunk if p.action == "skip"]
    writes = [p for p in chunk if p.action in ("create", "update")]
    noted = [(p.row, n) for p in (*fails, *skips) for n in p.notes]
    try:
        async with transaction(maker) as session:
            if previous is not None and any(p.action == "update" for p in writes):
                await previous.wait()
            outcome = await importer.write(session, ctx, writes) if writes else ChunkOutcome()
            if previous is not None:
                await previous.wait()
            await _heartbeat(session, claim, utcnow())
            await _progress(
                session,
                claim,
                rows=len(chunk),
                created=outcome.created,
                updated=outcome.updated,
                skipped=len(skips) + outcome.skipped,
                failed=len(fails) + outcome.failed,
                notes=[*noted, *outcome.notes],
                headers=headers,
            )
        return outcome
    except (LeaseLost, asyncio.CancelledError):
        raise
    except Exception as error:
        log.warning("import %s: a chunk of %d rows failed: %r", claim.import_id, len(chunk), error)
        numbers = [p.row.number for p in chunk]
        message = (
            f"not imported: rows {min(numbers)}–{max(numbers)} are written together and writing "
            f"them failed ({_reason(error)}); none of them was saved"
        )
        failed_notes = [
            (p.row, RowError("", message[:MAX_TEXT], "", "chunk_failed")) for p in writes
        ]
        if previous is not None:
            await previous.wait()
        async with transaction(maker) as session:
            await _heartbeat(session, claim, utcnow())
            await _progress(
                session,
                claim,
                rows=len(chunk),
                created=0,
                updated=0,
                skipped=len(skips),
                failed=len(fails) + len(writes),
                notes=[*noted, *failed_notes],
                headers=headers,
            )
        return ChunkOutcome()


async def _write_all(
    maker: async_sessionmaker[AsyncSession],
    claim: Claim,
    importer: EntityImporter,
    ctx: WriteContext,
    chunks: AsyncGenerator[list[RowPlan], None],
    headers: Sequence[str],
    writers: int,
) -> tuple[Counter[int], Counter[int]]:
    """Write the planned chunks as they come, ``writers`` at a time on their own connections
    (the database works on one chunk while the next is cleaned, planned and sent), committing
    in file order. Returns the owners to tell: customers given to them, changed."""
    assigned: Counter[int] = Counter()
    changed: Counter[int] = Counter()
    slots = asyncio.Semaphore(writers)
    committed: asyncio.Event | None = None
    running: set[asyncio.Task[None]] = set()

    async def write(
        chunk: list[RowPlan], previous: asyncio.Event | None, done: asyncio.Event
    ) -> None:
        try:
            outcome = await _write_chunk(maker, claim, importer, ctx, chunk, headers, previous)
            ctx.created_ids.update(outcome.created_ids)
            importer.written(outcome)
            assigned.update(outcome.assigned)
            changed.update(outcome.changed)
            # Only a chunk that committed (or recorded its failure) lets the next commit.
            done.set()
        finally:
            slots.release()

    try:
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                await slots.acquire()
                for task in [t for t in running if t.done()]:
                    running.discard(task)
                    task.result()  # a lost lease or a crash stops the import here
                done = asyncio.Event()
                running.add(asyncio.create_task(write(chunk, committed, done)))
                committed = done
        while running:
            finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_EXCEPTION)
            for task in finished:
                running.discard(task)
                task.result()
    except BaseException:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        raise
    return assigned, changed


async def _heartbeat(session: AsyncSession, claim: Claim, now: dt.datetime) -> None:
    """Renew the lease first thing in the chunk's transaction (on PostgreSQL this also locks
    the import row until the chunk commits, so nobody takes it over halfway)."""
    result = await session.execute(
        update(Import)
        .where(Import.id == claim.import_id, Import.lease_token == claim.token)
        .values(heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLost


async def _progress(
    session: AsyncSession,
    claim: Claim,
    *,
    rows: int,
    created: int,
    updated: int,
    skipped: int,
    failed: int,
    notes: Sequence[tuple[CleanRow, RowError]],
    headers: Sequence[str],
) -> None:
    await session.execute(
        update(Import)
        .where(Import.id == claim.import_id, Import.lease_token == claim.token)
        .values(
            rows_done=Import.rows_done + rows,
            created=Import.created + created,
            updated=Import.updated + updated,
            skipped=Import.skipped + skipped,
            failed=Import.failed + failed,
        )
        .execution_options(synchronize_session=False)
    )
    if notes:
        report = []
        for row, error in sorted(notes, key=lambda n: n[0].number):
            out = _error_out(row, error, headers)
            report.append(
                {
                    "import_id": claim.import_id,
                    "row_number": out["row"],
                    "column_name": (out["column_name"] or None) and out["column_name"][:200],
                    "field": out["field"][:80],
                    "message": out["message"][:MAX_TEXT],
                    "value": out["value"][:MAX_TEXT],
                    "code": out["code"][:32],
                }
            )
        await session.execute(insert(ImportRowError), report)


async def _finish(
    maker: async_sessionmaker[AsyncSession],
    claim: Claim,
    status: str,
    *,
    error: str | None = None,
    principal: Principal | None = None,
    assigned: Mapping[int, int] | None = None,
    changed: Mapping[int, int] | None = None,
) -> None:
    now = utcnow()
    async with transaction(maker) as session:
        result = await session.execute(
            update(Import)
            .where(Import.id == claim.import_id, Import.lease_token == claim.token)
            .values(
                status=status,
                error=error[:1000] if error else None,
                finished_at=now,
                heartbeat_at=now,
                lease_token=None,
                content=None,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise LeaseLost
        record = (await session.scalars(select(Import).where(Import.id == claim.import_id))).one()
        audit.record_event(
            session,
            actor_id=record.created_by_id,
            entity="import",
            entity_id=record.id,
            action="import_run",
            changes={
                key: {"before": None, "after": getattr(record, key)}
                for key in ("status", "rows_total", "created", "updated", "skipped", "failed")
            },
        )
        if principal is not None:
            await _tell_owners(session, principal, record, assigned or {}, changed or {}, now)
    log.info(
        "import %s %s: %d created, %d updated, %d skipped, %d failed",
        record.id,
        status,
        record.created,
        record.updated,
        record.skipped,
        record.failed,
    )


async def _tell_owners(
    session: AsyncSession,
    principal: Principal,
    record: Import,
    assigned: Mapping[int, int],
    changed: Mapping[int, int],
    now: dt.datetime,
) -> None:
    """One notification per owner, not one per customer (B6 for a whole file)."""
    who = principal.display_name
    drafts = [
        notifications.Draft(
            user_id=user_id,
            kind="customers_assigned",
            title=f"{who} 导入了 {count} 个客户给你",
            body=record.file_name,
            link="/customers",
            data={"import_id": record.id, "count": count},
        )
        for user_id, count in sorted(assigned.items())
    ] + [
        notifications.Draft(
            user_id=user_id,
            kind="customer_changed",
            title=f"{who} 通过导入修改了你的 {count} 个客户",
            body=record.file_name,
            link="/customers",
            data={"import_id": record.id, "count": count},
        )
        for user_id, count in sorted(changed.items())
    ]
    await notifications.deliver(session, drafts, now)


def import_view(record: Import) -> dict[str, Any]:
    data = {
        c: getattr(record, c)
        for c in (
            "id",
            "entity",
            "status",
            "file_name",
            "file_size",
            "file_sha256",
            "file_format",
            "encoding",
            "sheet",
            "mapping",
            "duplicate_policy",
            "rows_total",
            "rows_done",
            "created",
            "updated",
            "skipped",
            "failed",
            "error",
            "created_by_id",
            "created_at",
            "started_at",
            "finished_at",
        )
    }
    data["progress"] = progress_of(record)
    return data


__all__ = [
    "JOB_ID",
    "Claim",
    "LeaseLost",
    "Upload",
    "check_rights",
    "claim_next",
    "get_import",
    "import_view",
    "list_imports",
    "preview",
    "process_queued_imports",
    "report_pages",
    "submit",
]
