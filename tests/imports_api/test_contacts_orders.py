"""Importing contacts (onto customers found by id, phone or name) and orders (through the
bulk-orders service, idempotent per order number)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from app.models import AuditEvent, Contact, CustomerPhone, Order, OrderLine, Product
from tests.factories import auth, make_contact, make_customer
from tests.imports_api.conftest import count, csv_bytes, report_rows, run_job, upload


async def done_import(app, client, user, content: bytes, **kw) -> dict:
    queued = await upload(client, app, user, content, **kw)
    assert queued.status_code == 202, queued.text
    await run_job(app)
    response = await client.get(queued.headers["Location"], headers=auth(app, user))
    return response.json()


# --- contacts --------------------------------------------------------------------------------


@pytest.fixture
async def accounts(maker, org):
    qinghe = await make_customer(maker, org.rep_a, "杭州青禾科技有限公司", phones=["057188880000"])
    star = await make_customer(maker, org.rep_a, "北京启明星辰", phones=["01066660000"])
    theirs = await make_customer(maker, org.rep_d, "南方远洋贸易有限公司", phones=["02088880000"])
    await make_contact(maker, star, "李四", phones=["13900000004"])
    return qinghe, star, theirs


CONTACTS = csv_bytes(
    "客户ID,客户名称,客户电话,联系人姓名,职位,手机,主要联系人\n"
    "{qinghe},,,张三,总经理,13800000003,是\n"
    ",杭州青禾科技,,王五,采购,13800000005,\n"  # the name without 有限公司
    ",,010-6666-0000,李四,技术,,\n"  # the customer has 李四 already
    ",南方远洋贸易有限公司,,赵六,,,\n"  # rep_d's customer: not for rep_a
    ",没有这家公司,,钱七,,,\n"
    ",,,孙八,,,\n"  # no customer at all
)


async def test_contacts_attach_to_customers_found_by_id_name_or_phone(
    app, client, maker, org, accounts
):
    qinghe, _, _ = accounts
    file = CONTACTS.replace(b"{qinghe}", str(qinghe.id).encode())

    preview = (await upload(client, app, org.rep_a, file, entity="contacts", dry_run=True)).json()
    done = await done_import(app, client, org.rep_a, file, entity="contacts")

    assert preview["counts"] == {"rows": 6, "create": 2, "update": 0, "skip": 1, "error": 3}
    assert (done["created"], done["skipped"], done["failed"]) == (2, 1, 3)
    async with maker() as session:
        made = (
            await session.execute(
                select(Contact.customer_id, Contact.name, Contact.title, Contact.is_primary)
                .where(Contact.name.in_(["张三", "王五"]))
                .order_by(Contact.name)
            )
        ).all()
    assert sorted(made) == sorted(
        [(qinghe.id, "张三", "总经理", True), (qinghe.id, "王五", "采购", False)]
    )
    assert await count(maker, CustomerPhone, CustomerPhone.number == "13800000003") == 1
    assert await count(maker, AuditEvent, AuditEvent.action == "contact_created") == 2
    problems = [(r.row_number, r.field, r.code) for r in await report_rows(maker, done["id"])]
    assert problems == [
        (4, "name", "duplicate"),
        (5, "customer_name", "not_found"),
        (6, "customer_name", "not_found"),
        (7, "customer_id", "required"),
    ]


async def test_contact_update_policy_fills_the_existing_contact(app, client, maker, org, accounts):
    file = csv_bytes("客户名称,联系人姓名,职位,邮箱\n北京启明星辰,李四,技术总监,li@star.cn\n")

    done = await done_import(app, client, org.rep_a, file, entity="contacts", policy="update")

    assert done["updated"] == 1
    async with maker() as session:
        contact = await session.scalar(select(Contact).where(Contact.name == "李四"))
    assert (contact.title, contact.email, contact.phones, contact.version) == (
        "技术总监",
        "li@star.cn",
        ["13900000004"],
        2,
    )


# --- orders ----------------------------------------------------------------------------------


@pytest.fixture
async def catalogue(maker):
    async with maker() as session, session.begin():
        items = [
            Product(name="标准版", sku="STD", unit_price_cents=6800_00, unit_cost_cents=1200_00),
            Product(name="专业版", sku="PRO", unit_price_cents=9800_00, unit_cost_cents=2000_00),
        ]
        session.add_all(items)
        await session.flush()
        return items


ORDERS = csv_bytes(
    "订单号,客户名称,下单时间,商品名称,SKU,数量,单价,订单金额,渠道\n"
    "SO-1,杭州青禾科技有限公司,2026-11-20 10:00,标准版,,2,,,电商\n"
    "SO-2,北京启明星辰,2026/11/21,,,,,300.50,门店\n"
    "SO-1,杭州青禾科技有限公司,2026-11-20 10:00,,PRO,1,9000,,电商\n"
    "SO-3,杭州青禾科技有限公司,2026-11-22,不存在的商品,,1,,,\n"
)


async def test_orders_are_recorded_once_per_order_number(
    app, client, maker, org, accounts, catalogue
):
    done = await done_import(app, client, org.rep_a, ORDERS, entity="orders")

    assert (done["created"], done["failed"]) == (3, 1)
    async with maker() as session:
        orders = {o.external_id: o for o in (await session.scalars(select(Order))).all()}
        lines = (await session.scalars(select(OrderLine).order_by(OrderLine.id))).all()
    assert set(orders) == {"SO-1", "SO-2"}
    so1 = orders["SO-1"]
    assert (so1.source, so1.channel, so1.amount_cents) == ("import", "电商", 2 * 6800_00 + 9000_00)
    assert so1.ordered_at == dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai
    assert [(line.quantity, line.unit_price_cents) for line in lines] == [
        (2, 6800_00),
        (1, 9000_00),
    ]
    assert (orders["SO-2"].amount_cents, orders["SO-2"].channel) == (300_50, "门店")
    (problem,) = await report_rows(maker, done["id"])
    assert (problem.row_number, problem.field, problem.code) == (5, "product", "not_found")

    # Another file with a known order number and a new one: the known one is skipped.
    later = ORDERS.replace(b"SO-3", b"SO-4").replace("不存在的商品".encode(), "专业版".encode())
    again = await done_import(app, client, org.rep_a, later, entity="orders")

    assert (again["created"], again["skipped"], again["failed"]) == (1, 3, 0)
    assert await count(maker, Order) == 3
    assert await count(maker, OrderLine) == 3


async def test_an_order_number_of_another_customer_fails(
    app, client, maker, org, accounts, catalogue
):
    _, star, _ = accounts
    async with maker() as session, session.begin():
        session.add(
            Order(
                customer_id=star.id,
                external_id="SO-1",
                source="api",
                ordered_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
                amount_cents=100,
            )
        )
    file = csv_bytes(
        "订单号,客户名称,下单时间,订单金额\nSO-1,杭州青禾科技有限公司,2026-11-20,100\n"
    )

    body = (await upload(client, app, org.rep_a, file, entity="orders", dry_run=True)).json()

    assert body["counts"]["error"] == 1
    assert "another customer" in body["errors"][0]["message"]


async def test_orders_of_customers_outside_the_scope_fail(app, client, maker, org, accounts):
    file = csv_bytes(
        "订单号,客户名称,下单时间,订单金额\nSO-9,南方远洋贸易有限公司,2026-11-20,100\n"
    )

    done = await done_import(app, client, org.rep_a, file, entity="orders")

    assert (done["created"], done["failed"]) == (0, 1)
    assert await count(maker, Order) == 0
