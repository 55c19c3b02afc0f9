"""Importing customers (SPEC I1, B4): dry run, the job, progress, the error report, policies."""

from __future__ import annotations

import codecs
import csv
import io

import pytest
from sqlalchemy import select

from app.models import (
    AuditEvent,
    Customer,
    CustomerPhone,
    CustomerTag,
    Import,
    Notification,
    OwnershipEvent,
    Tag,
    TagGroup,
    WebhookEvent,
)
from tests.factories import auth, make_contact, make_customer
from tests.imports_api.conftest import (
    URL,
    count,
    csv_bytes,
    imports_stored,
    report_rows,
    run_job,
    upload,
)

GBK_FILE = csv_bytes(
    "客户名称,手机,邮箱,省份,城市,客户级别,标签\n"
    "杭州青禾科技有限公司,138 1234 5678,QH@Example.com,浙江,杭州,A级,高意向\n"
    "北京启明星辰,+86 139-0000-1111,,北京,北京,B,\n"
    "坏行公司,12,not-an-email,,,,\n"
    ",13900002222,,,,,\n",
    "gbk",
)


@pytest.fixture
async def hot_tag(maker) -> Tag:
    async with maker() as session, session.begin():
        group = TagGroup(name="购买需求")
        session.add(group)
        await session.flush()
        tag = Tag(group_id=group.id, name="高意向")
        session.add(tag)
        await session.flush()
        return tag


async def customers(maker) -> list[Customer]:
    async with maker() as session:
        return list((await session.scalars(select(Customer).order_by(Customer.id))).all())


async def test_gbk_file_is_previewed_then_imported_by_the_job(app, client, maker, org, hot_tag):
    preview = await upload(client, app, org.rep_a, GBK_FILE, dry_run=True)

    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert (body["dry_run"], body["file_format"], body["encoding"]) == (True, "csv", "gb18030")
    assert body["headers"] == ["客户名称", "手机", "邮箱", "省份", "城市", "客户级别", "标签"]
    assert body["mapping"] == body["suggested_mapping"]
    assert body["mapping"]["0"] == "name" and body["mapping"]["1"] == "phone"
    assert body["counts"] == {"rows": 4, "create": 2, "update": 0, "skip": 0, "error": 2}
    problems = [(e["row"], e["field"], e["value"]) for e in body["errors"]]
    assert problems == [(4, "phone", "12"), (4, "email", "not-an-email"), (5, "name", "")]
    assert body["errors"][0]["column_name"] == "手机"
    assert {"key": "name", "label": "客户名称", "label_en": "Customer name", "required": True} in (
        body["fields"]
    )
    # A dry run writes nothing.
    assert await imports_stored(maker) == 0 and await customers(maker) == []

    queued = await upload(client, app, org.rep_a, GBK_FILE)

    assert queued.status_code == 202, queued.text
    record = queued.json()
    assert queued.headers["Location"] == f"{URL}/{record['id']}"
    assert (record["status"], record["rows_total"], record["rows_done"]) == ("queued", 4, 0)
    assert await customers(maker) == []

    assert await run_job(app) == 1

    done = (await client.get(queued.headers["Location"], headers=auth(app, org.rep_a))).json()
    assert done["status"] == "done"
    assert (done["rows_done"], done["created"], done["failed"], done["progress"]) == (4, 2, 2, 1.0)
    assert done["finished_at"] is not None and done["error"] is None
    made = await customers(maker)
    assert [(c.name, c.phones, c.email, c.level, c.owner_id) for c in made] == [
        ("杭州青禾科技有限公司", ["13812345678"], "qh@example.com", "A", org.rep_a.id),
        ("北京启明星辰", ["13900001111"], None, "B", org.rep_a.id),
    ]
    assert made[0].name_normalized == "杭州青禾科技" and made[0].version == 1
    assert await count(maker, CustomerPhone) == 2
    assert await count(maker, CustomerTag, CustomerTag.tag_id == hot_tag.id) == 1
    assert await count(maker, OwnershipEvent, OwnershipEvent.action == "created") == 2
    assert await count(maker, AuditEvent, AuditEvent.action == "created") == 2
    async with maker() as session:
        created = (
            await session.scalars(
                select(AuditEvent.changes).where(
                    AuditEvent.customer_id == made[0].id, AuditEvent.action == "created"
                )
            )
        ).one()
    # One timeline entry per new customer, its tags in it.
    assert created["tags"] == {"before": None, "after": ["购买需求/高意向"]}
    assert created["phones"] == {"before": None, "after": ["13812345678"]}
    # Integrations hear of each new customer (the webhook outbox).
    assert await count(maker, WebhookEvent, WebhookEvent.type == "customer.created") == 2
    assert await count(maker, AuditEvent, AuditEvent.entity == "import") == 1
    async with maker() as session:
        finished = (
            await session.scalars(
                select(WebhookEvent).where(WebhookEvent.type == "import.finished")
            )
        ).one()
    assert finished.data["import_id"] == record["id"]
    assert finished.data["changes"]["created"]["after"] == 2
    assert finished.data["changes"]["failed"]["after"] == 2
    # The job keeps no copy of the file once it has run.
    async with maker() as session:
        assert await session.scalar(select(Import.content)) is None

    report = await client.get(f"{queued.headers['Location']}/errors", headers=auth(app, org.rep_a))
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/csv")
    assert report.content.startswith(codecs.BOM_UTF8)
    lines = list(csv.reader(io.StringIO(report.content.decode("utf-8-sig"))))
    assert lines[0] == ["行号", "列", "字段", "问题", "原值", "代码"]
    assert [(r[0], r[1], r[2], r[4]) for r in lines[1:]] == [
        ("4", "手机", "phone", "12"),
        ("4", "邮箱", "email", "not-an-email"),
        ("5", "客户名称", "name", ""),
    ]
    english = await client.get(
        f"{queued.headers['Location']}/errors?lang=en", headers=auth(app, org.rep_a)
    )
    assert english.content.decode("utf-8-sig").startswith("Row,Column,Field,Problem,Value,Code")


async def test_job_runs_nothing_when_nothing_is_queued(app):
    assert await run_job(app) == 0


async def test_progress_is_counted_per_chunk(app, client, maker, org, monkeypatch):
    monkeypatch.setattr(app.state.settings, "import_chunk_rows", 100)
    lines = "".join(f"客户{i:04d}号,1380000{i:04d}\n" for i in range(250))
    queued = await upload(client, app, org.rep_a, csv_bytes("客户名称,手机\n" + lines))
    seen: list[int] = []
    from app.services.importer import runs

    original = runs._progress

    async def spy(session, claim, **kw):
        seen.append(kw["rows"])
        await original(session, claim, **kw)

    monkeypatch.setattr(runs, "_progress", spy)
    await run_job(app)

    assert seen == [100, 100, 50]
    done = (await client.get(queued.headers["Location"], headers=auth(app, org.rep_a))).json()
    assert (done["rows_done"], done["created"]) == (250, 250)


# --- duplicate policies (B4) -----------------------------------------------------------------


POLICY_FILE = csv_bytes(
    "客户名称,手机,邮箱,城市\n"
    "青禾科技,138-1234-5678,new@qinghe.cn,杭州\n"  # same phone as rep_a's customer
    "全新客户有限公司,13700000001,,\n"
    "南方远洋贸易有限公司,13700000002,,\n"  # same name as rep_d's customer (outside the scope)
    "全新客户,13700000001,,宁波\n"  # repeats row 3 (same phone)
)


@pytest.fixture
async def existing(maker, org):
    mine = await make_customer(
        maker, org.rep_a, "杭州青禾科技有限公司", phones=["13812345678"], city="上海"
    )
    theirs = await make_customer(maker, org.rep_d, "南方远洋贸易有限公司", phones=["13600000000"])
    return mine, theirs


async def run_policy(app, client, org, policy: str) -> dict:
    preview = await upload(client, app, org.rep_a, POLICY_FILE, policy=policy, dry_run=True)
    assert preview.status_code == 200, preview.text
    queued = await upload(client, app, org.rep_a, POLICY_FILE, policy=policy)
    assert queued.status_code == 202, queued.text
    await run_job(app)
    done = (await client.get(queued.headers["Location"], headers=auth(app, org.rep_a))).json()
    return {"preview": preview.json(), "done": done}


async def test_skip_policy_leaves_duplicates_out(app, client, maker, org, existing):
    result = await run_policy(app, client, org, "skip")

    assert result["preview"]["counts"] == {
        "rows": 4,
        "create": 1,
        "update": 0,
        "skip": 3,
        "error": 0,
    }
    dupes = {d["row"]: d for d in result["preview"]["duplicates"]}
    assert dupes[2]["matched_on"] == ["phone"] and dupes[2]["customer_id"] == existing[0].id
    # A customer outside the importer's scope is named masked, without its id.
    assert dupes[4]["customer_id"] is None and "*" in dupes[4]["customer_name"]
    assert dupes[5]["same_as_row"] == 3
    done = result["done"]
    assert (done["created"], done["updated"], done["skipped"], done["failed"]) == (1, 0, 3, 0)
    names = [c.name for c in await customers(maker)]
    assert names == ["杭州青禾科技有限公司", "南方远洋贸易有限公司", "全新客户有限公司"]
    notes = await report_rows(maker, done["id"])
    assert [(n.row_number, n.field, n.code) for n in notes] == [
        (2, "phone", "duplicate"),
        (4, "name", "duplicate"),
        (5, "phone", "duplicate"),
    ]
    assert str(existing[0].id) in notes[0].message and "outside your view" in notes[1].message


async def test_update_policy_updates_what_the_importer_may_change(
    app, client, maker, org, existing
):
    mine, theirs = existing
    result = await run_policy(app, client, org, "update")

    assert result["preview"]["counts"] == {
        "rows": 4,
        "create": 1,
        "update": 2,
        "skip": 1,
        "error": 0,
    }
    done = result["done"]
    assert (done["created"], done["updated"], done["skipped"]) == (1, 2, 1)
    rows = {c.id: c for c in await customers(maker)}
    updated = rows[mine.id]
    # Non-empty cells are written; nothing is blanked; the owner stays.
    assert (updated.name, updated.email, updated.city, updated.owner_id) == (
        "青禾科技",
        "new@qinghe.cn",
        "杭州",
        org.rep_a.id,
    )
    assert updated.version == mine.version + 1
    assert rows[theirs.id].name == "南方远洋贸易有限公司" and rows[theirs.id].version == 1
    # Row 5 repeats row 3: it updates the customer row 3 created.
    (new,) = [c for c in rows.values() if c.id not in (mine.id, theirs.id)]
    assert (new.name, new.city, new.version) == ("全新客户", "宁波", 2)
    async with maker() as session:
        changes = (
            await session.scalars(
                select(AuditEvent.changes).where(
                    AuditEvent.customer_id == mine.id, AuditEvent.action == "updated"
                )
            )
        ).one()
    assert changes["city"] == {"before": "上海", "after": "杭州"}
    (note,) = await report_rows(maker, done["id"])
    assert note.row_number == 4 and "may not change" in note.message


async def test_create_policy_creates_duplicates_anyway(app, client, maker, org, existing):
    result = await run_policy(app, client, org, "create")

    assert result["preview"]["counts"]["create"] == 4
    assert result["done"]["created"] == 4
    assert len(await customers(maker)) == 6


async def test_contact_phones_and_similar_names_count_as_duplicates(app, client, maker, org):
    customer = await make_customer(maker, org.rep_a, "上海星辰贸易有限公司", phones=[])
    await make_contact(maker, customer, "王五", phones=["13511112222"])
    async with maker() as session, session.begin():
        session.add(CustomerPhone(customer_id=customer.id, number="13511112222"))
    file = csv_bytes("客户名称,手机\n完全不同的名字,135 1111 2222\n上海星辰商贸有限公司,\n")

    body = (await upload(client, app, org.rep_a, file, dry_run=True)).json()

    assert body["counts"]["skip"] == 2
    by_row = {d["row"]: d for d in body["duplicates"]}
    assert by_row[2]["matched_on"] == ["phone"]
    assert by_row[3]["matched_on"] == ["name"] and 0.8 <= by_row[3]["similarity"] < 1


async def test_recycle_bin_customers_count_as_duplicates(app, client, maker, org):
    from app.models.base import utcnow

    await make_customer(
        maker, org.rep_a, "回收站里的公司", phones=["13311110000"], deleted_at=utcnow()
    )
    file = csv_bytes("客户名称,手机\n回收站里的公司,\n")

    body = (await upload(client, app, org.rep_a, file, dry_run=True, policy="update")).json()

    # Matched, but a binned customer cannot be updated: skipped.
    assert body["counts"] == {"rows": 1, "create": 0, "update": 0, "skip": 1, "error": 0}


# --- owners and tags -------------------------------------------------------------------------


async def test_owner_column_assigns_within_the_importers_scope(app, client, maker, org):
    file = csv_bytes(
        "客户名称,负责人\n甲公司,rep_a\n乙公司,rep_c\n丙公司,rep_d\n丁公司,nobody\n戊公司,\n"
    )

    queued = await upload(client, app, org.mgr_east, file)
    await run_job(app)

    done = (await client.get(queued.headers["Location"], headers=auth(app, org.mgr_east))).json()
    assert (done["created"], done["failed"]) == (3, 2)
    owners = {c.name: c.owner_id for c in await customers(maker)}
    assert owners == {"甲公司": org.rep_a.id, "乙公司": org.rep_c.id, "戊公司": org.mgr_east.id}
    failed = await report_rows(maker, done["id"])
    assert [(n.row_number, n.field, n.value) for n in failed] == [
        (4, "owner", "rep_d"),
        (5, "owner", "nobody"),
    ]
    # Each new owner hears about their customers once.
    async with maker() as session:
        told = (
            await session.scalars(select(Notification.user_id).order_by(Notification.user_id))
        ).all()
    assert told == [org.rep_a.id, org.rep_c.id]


async def test_a_rep_may_not_give_customers_to_others(app, client, maker, org):
    file = csv_bytes("客户名称,负责人\n甲公司,rep_b\n乙公司,rep_a\n")

    body = (await upload(client, app, org.rep_a, file, dry_run=True)).json()

    assert body["counts"]["error"] == 1
    assert body["errors"][0]["row"] == 2 and body["errors"][0]["field"] == "owner"


async def test_unknown_and_ambiguous_tags_fail_the_row(app, client, maker, org, hot_tag):
    async with maker() as session, session.begin():
        for name in ("A", "B"):
            group = TagGroup(name=f"组{name}")
            session.add(group)
            await session.flush()
            session.add(Tag(group_id=group.id, name="重复"))
    file = csv_bytes("客户名称,标签\n甲公司,高意向\n乙公司,没有这个\n丙公司,重复\n")

    body = (await upload(client, app, org.rep_a, file, dry_run=True)).json()

    assert body["counts"]["create"] == 1
    messages = {e["row"]: e["message"] for e in body["errors"]}
    assert "no tag named 没有这个" in messages[3]
    assert "several groups" in messages[4]
