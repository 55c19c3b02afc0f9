"""The import job: chunks all or nothing, one run per import, resuming after a crash."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import select, update

from app.models import Customer, CustomFieldDefinition, Import, User
from app.models.base import utcnow
from app.services.importer import runs
from app.services.importer.customers import CustomerImporter
from tests.factories import auth
from tests.imports_api.conftest import count, csv_bytes, report_rows, run_job, upload

ROWS = 10
FILE = csv_bytes("客户名称,手机\n" + "".join(f"客户{i}号,1380000{i:04d}\n" for i in range(ROWS)))


@pytest.fixture
def small_chunks(app, monkeypatch):
    monkeypatch.setattr(app.state.settings, "import_chunk_rows", 3)


async def record(maker, import_id: int) -> Import:
    async with maker() as session:
        return (await session.scalars(select(Import).where(Import.id == import_id))).one()


async def test_a_failing_chunk_rolls_back_whole_and_the_rest_goes_on(
    app, client, maker, org, small_chunks, monkeypatch
):
    original = CustomerImporter.write

    async def write_then_fail(self, session, ctx, plans):
        outcome = await original(self, session, ctx, plans)
        if any(p.row.number == 6 for p in plans):  # rows 5–7: written, then the chunk fails
            raise RuntimeError("disk full")
        return outcome

    monkeypatch.setattr(CustomerImporter, "write", write_then_fail)
    queued = await upload(client, app, org.rep_a, FILE)
    await run_job(app)

    done = (await client.get(queued.headers["Location"], headers=auth(app, org.rep_a))).json()
    assert (done["status"], done["rows_done"], done["created"], done["failed"]) == (
        "done",
        10,
        7,
        3,
    )
    async with maker() as session:
        names = set((await session.scalars(select(Customer.name))).all())
    assert names == {f"客户{i}号" for i in range(ROWS)} - {"客户3号", "客户4号", "客户5号"}
    notes = await report_rows(maker, done["id"])
    assert [n.row_number for n in notes] == [5, 6, 7]
    assert {n.code for n in notes} == {"chunk_failed"}
    assert "rows 5–7" in notes[0].message and "RuntimeError" in notes[0].message


async def test_two_job_runs_at_once_import_each_file_once(app, client, maker, org, small_chunks):
    other = csv_bytes("客户名称\n" + "".join(f"别的客户{i}号\n" for i in range(ROWS)))
    first = await upload(client, app, org.rep_a, FILE)
    second = await upload(client, app, org.rep_b, other)

    ran = await asyncio.gather(run_job(app), run_job(app))

    assert sum(ran) == 2
    assert await count(maker, Customer) == 2 * ROWS
    for response in (first, second):
        assert (await record(maker, response.json()["id"])).created == ROWS


class Crash(BaseException):
    """The process dies (not an error the job could handle)."""


async def test_an_abandoned_import_is_resumed_after_its_last_chunk(
    app, client, maker, org, small_chunks, monkeypatch
):
    queued = await upload(client, app, org.rep_a, FILE)
    import_id = queued.json()["id"]
    original = runs._write_chunk
    written = 0

    async def die_after_two_chunks(*args, **kw):
        nonlocal written
        if written == 2:
            # Chunks are written concurrently and commit in order: die once the first two have
            # committed (otherwise the crash may cut the second short, and the count is racy).
            previous = args[6] if len(args) > 6 else kw.get("previous")
            if previous is not None:
                await previous.wait()
            raise Crash
        written += 1
        return await original(*args, **kw)

    monkeypatch.setattr(runs, "_write_chunk", die_after_two_chunks)
    with pytest.raises(Crash):
        await run_job(app)
    monkeypatch.setattr(runs, "_write_chunk", original)

    halfway = await record(maker, import_id)
    assert (halfway.status, halfway.rows_done, halfway.created) == ("running", 6, 6)
    # Within the stale period nobody takes it over: its process may still be alive.
    assert await run_job(app) == 0
    async with maker() as session, session.begin():
        await session.execute(update(Import).values(heartbeat_at=utcnow() - dt.timedelta(hours=1)))

    assert await run_job(app) == 1

    done = await record(maker, import_id)
    assert (done.status, done.rows_done, done.created, done.failed) == ("done", 10, 10, 0)
    assert await count(maker, Customer) == ROWS


async def test_a_run_that_lost_its_lease_stops(app, client, maker, org):
    await upload(client, app, org.rep_a, FILE)
    settings = app.state.settings
    stale = await runs.claim_next(maker, settings)
    assert stale is not None
    async with maker() as session, session.begin():
        await session.execute(update(Import).values(heartbeat_at=utcnow() - dt.timedelta(hours=1)))
    taker = await runs.claim_next(maker, settings)

    assert taker is not None and taker.token != stale.token
    with pytest.raises(runs.LeaseLost):
        await runs._finish(maker, stale, "done")
    await runs._finish(maker, taker, "failed", error="test")
    assert (await record(maker, taker.import_id)).status == "failed"


async def test_a_file_that_no_longer_fits_fails_the_import(app, client, maker, org):
    queued = await upload(client, app, org.rep_a, FILE)
    async with maker() as session, session.begin():
        session.add(CustomFieldDefinition(key="budget", label="预算", type="number", required=True))

    await run_job(app)

    done = (await client.get(queued.headers["Location"], headers=auth(app, org.rep_a))).json()
    assert done["status"] == "failed" and "预算" in done["error"]
    assert await count(maker, Customer) == 0
    async with maker() as session:
        assert await session.scalar(select(Import.content)) is None


async def test_an_import_of_a_deactivated_user_fails(app, client, maker, org):
    queued = await upload(client, app, org.rep_a, FILE)
    async with maker() as session, session.begin():
        await session.execute(update(User).where(User.id == org.rep_a.id).values(is_active=False))

    await run_job(app)

    done = await record(maker, queued.json()["id"])
    assert done.status == "failed" and "inactive" in (done.error or "")
    assert await count(maker, Customer) == 0


async def test_the_scheduler_runs_the_import_job(app):
    from app.jobs.scheduler import KehuScheduler

    scheduler = KehuScheduler(
        app.state.engine, app.state.sessionmaker, app.state.settings, app.state.http
    )
    try:
        assert "run_imports" in scheduler.job_ids
    finally:
        scheduler.analytics.close()
