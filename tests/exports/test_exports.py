"""Exports (SPEC I2): the caller's scope only, every page, pool-withheld fields empty, formulas
neutralised, headers the importer recognises."""

from __future__ import annotations

import codecs
import csv
import io
from typing import Any

import openpyxl
import pytest
from sqlalchemy import insert

from app.models import Customer
from app.services.imports import suggest_mapping
from tests.analytics.conftest import add_order, at, make_products
from tests.factories import auth, make_customer, make_org
from tests.pools.conftest import make_pool


@pytest.fixture
async def org(maker):
    return await make_org(maker)


def read_csv(body: bytes) -> list[list[str]]:
    assert body.startswith(codecs.BOM_UTF8)
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


async def get(client: Any, url: str, headers: dict[str, str]) -> Any:
    response = await client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return response


async def test_customers_export_only_what_the_caller_may_read(app, client, maker, org):
    await make_customer(maker, org.rep_a, "甲客户", phones=["13912345678"], level="A")
    await make_customer(maker, org.rep_b, "乙客户")
    response = await get(client, "/api/v1/exports/customers", auth(app, org.rep_a))
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="customers-' in response.headers["content-disposition"]
    rows = read_csv(response.content)
    header, body = rows[0], rows[1:]
    assert [r[header.index("客户名称")] for r in body] == ["甲客户"]
    assert body[0][header.index("手机")] == "13912345678"
    assert body[0][header.index("客户级别")] == "A"
    manager = read_csv(
        (await get(client, "/api/v1/exports/customers", auth(app, org.mgr_east))).content
    )
    assert sorted(r[header.index("客户名称")] for r in manager[1:]) == ["乙客户", "甲客户"]


async def test_list_filters_apply_and_every_page_is_exported(app, client, maker, org):
    async with maker() as session, session.begin():
        await session.execute(
            insert(Customer),
            [
                {
                    "name": f"批量{i:03d}",
                    "name_normalized": f"批量{i:03d}",
                    "owner_id": org.admin.id,
                    "level": "B" if i % 2 else "C",
                }
                for i in range(450)
            ],
        )
    rows = read_csv((await get(client, "/api/v1/exports/customers", auth(app, org.admin))).content)
    assert len(rows) == 451
    assert len({r[1] for r in rows[1:]}) == 450
    filtered = await get(client, "/api/v1/exports/customers?level=B", auth(app, org.admin))
    assert len(read_csv(filtered.content)) == 226


async def test_fields_a_pool_withholds_stay_empty(app, client, maker, org):
    pool = await make_pool(client, app, org)
    customer = await make_customer(
        maker, org.rep_a, "隐藏客户", phones=["13912345678"], email="boss@example.com"
    )
    released = await client.post(
        f"/api/v1/customers/{customer.id}/release",
        json={"pool_id": pool["id"], "reason": "x"},
        headers=auth(app, org.rep_a),
    )
    assert released.status_code == 200, released.text
    url = f"/api/v1/exports/customers?pool_id={pool['id']}&lang=en"
    rows = read_csv((await get(client, url, auth(app, org.rep_b))).content)
    header, body = rows[0], rows[1:]
    assert [r[header.index("Customer name")] for r in body] == ["隐藏客户"]
    assert body[0][header.index("Phone")] == ""
    assert body[0][header.index("E-mail")] == ""
    admin = read_csv((await get(client, url, auth(app, org.mgr_east))).content)
    assert admin[1][header.index("Phone")] == "13912345678"


async def test_cells_that_look_like_formulas_are_neutralised(app, client, maker, org):
    await make_customer(maker, org.admin, '=HYPERLINK("http://evil.example","点我")')
    await make_customer(maker, org.admin, "+86 公司")
    rows = read_csv((await get(client, "/api/v1/exports/customers", auth(app, org.admin))).content)
    names = sorted(r[rows[0].index("客户名称")] for r in rows[1:])
    assert names == ["'+86 公司", '\'=HYPERLINK("http://evil.example","点我")']


async def test_xlsx_export_and_the_header_imports_again(app, client, maker, org):
    await make_customer(maker, org.admin, "表格客户", phones=["13800001111"], email="a@b.example")
    response = await get(client, "/api/v1/exports/customers?format=xlsx", auth(app, org.admin))
    assert response.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    book = openpyxl.load_workbook(io.BytesIO(response.content), read_only=True)
    rows = [list(r) for r in book.active.iter_rows(values_only=True)]
    header = rows[0]
    assert [r[header.index("客户名称")] for r in rows[1:]] == ["表格客户"]
    mapping = suggest_mapping([str(h) for h in header], "customers")
    mapped = {str(header[i]): key for i, key in mapping.items()}
    for label, key in (
        ("客户名称", "name"),
        ("手机", "phone"),
        ("邮箱", "email"),
        ("标签", "tags"),
    ):
        assert mapped[label] == key


async def test_orders_export_one_row_per_line(app, client, maker, org):
    products = await make_products(maker, 2)
    mine = await make_customer(maker, org.rep_a, "下单客户")
    await add_order(
        maker,
        mine,
        at("2026-05-01"),
        500,
        lines=[(products[0], 2, 100, 40), (products[1], 3, 100, 30)],
        channel="直销",
    )
    theirs = await make_customer(maker, org.rep_b, "别人的客户")
    await add_order(maker, theirs, at("2026-05-02"), 900)
    rows = read_csv((await get(client, "/api/v1/exports/orders", auth(app, org.rep_a))).content)
    header, body = rows[0], rows[1:]
    assert len(body) == 2
    assert {r[header.index("客户ID")] for r in body} == {str(mine.id)}
    assert sorted(r[header.index("数量")] for r in body) == ["2", "3"]
    assert {r[header.index("渠道")] for r in body} == {"直销"}


async def test_opportunities_and_contracts_exports_are_scoped(app, client, maker, org):
    for path in ("opportunities", "contracts"):
        rows = read_csv(
            (await get(client, f"/api/v1/exports/{path}", auth(app, org.rep_a))).content
        )
        assert len(rows) == 1  # the header; nothing of anyone's yet


async def test_exports_need_a_sign_in_and_the_key_scope(app, client, org):
    assert (await client.get("/api/v1/exports/customers")).status_code == 401
    made = await client.post(
        "/api/v1/api-keys",
        json={"name": "BI", "scopes": ["orders:read"]},
        headers=auth(app, org.admin),
    )
    key = {"Authorization": f"Bearer {made.json()['token']}"}
    assert (await client.get("/api/v1/exports/customers", headers=key)).status_code == 403
    assert (await client.get("/api/v1/exports/orders", headers=key)).status_code == 200
    outsider = await client.get(
        "/api/v1/exports/customers?pool_id=999", headers=auth(app, org.rep_a)
    )
    assert outsider.status_code == 404
    bad = await client.get("/api/v1/exports/customers?format=pdf", headers=auth(app, org.admin))
    assert bad.status_code == 422
