"""Who may import what, and whose imports one may see (401, 403, 404; API key scopes)."""

from __future__ import annotations

from typing import Any

import pytest

from app.models import Customer
from tests.factories import auth, make_customer, make_role, make_user
from tests.imports_api.conftest import URL, count, csv_bytes, imports_stored, run_job, upload

FILE = csv_bytes("客户名称\n甲公司\n")
CONTACTS = csv_bytes("客户名称,联系人姓名\n甲公司,张三\n")


@pytest.fixture
async def reader(maker, org):
    """A user who may read their customers and nothing more."""
    async with maker() as session, session.begin():
        role = await make_role(session, "reader", [], "own")
        return await make_user(session, "reader", [role], org.east)


@pytest.fixture
async def creator(maker, org):
    """May create customers but not change them."""
    async with maker() as session, session.begin():
        role = await make_role(session, "creator", ["customer.create"], "own")
        return await make_user(session, "creator", [role], org.east)


@pytest.fixture
async def rep_import(app, client, org) -> str:
    response = await upload(client, app, org.rep_a, FILE)
    assert response.status_code == 202
    return response.headers["Location"]


async def test_every_endpoint_needs_sign_in(app, client, maker, rep_import):
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", URL, {"data": {"entity": "customers"}, "files": {"file": ("a.csv", FILE)}}),
        ("GET", URL, {}),
        ("GET", rep_import, {}),
        ("GET", f"{rep_import}/errors", {}),
    ]
    for method, url, kw in calls:
        response = await client.request(method, url, **kw)
        assert response.status_code == 401, (method, url)
        assert response.json()["type"].endswith("/unauthorized")
    assert await imports_stored(maker) == 1


@pytest.mark.parametrize("dry_run", [True, False])
async def test_customers_need_customer_create(app, client, maker, reader, dry_run):
    response = await upload(client, app, reader, FILE, dry_run=dry_run)

    assert response.status_code == 403
    assert "customer.create" in response.json()["detail"]
    assert await imports_stored(maker) == 0


async def test_the_update_policy_needs_customer_update(app, client, maker, creator):
    refused = await upload(client, app, creator, FILE, policy="update")
    allowed = await upload(client, app, creator, FILE, policy="skip")

    assert refused.status_code == 403 and "customer.update" in refused.json()["detail"]
    assert allowed.status_code == 202


@pytest.mark.parametrize("entity", ["contacts", "orders"])
async def test_contacts_and_orders_need_customer_update(app, client, maker, creator, entity):
    response = await upload(client, app, creator, CONTACTS, entity=entity)

    assert response.status_code == 403
    assert await imports_stored(maker) == 0


async def test_another_users_import_is_not_found(app, client, org, rep_import):
    import_id = rep_import.rsplit("/", 1)[1]
    for user in (org.rep_b, org.admin):
        for url in (rep_import, f"{rep_import}/errors"):
            response = await client.get(url, headers=auth(app, user))
            assert response.status_code == 404, (user.username, url)
        listed = (await client.get(URL, headers=auth(app, user))).json()
        assert import_id not in {str(i["id"]) for i in listed["items"]}
    mine = (await client.get(URL, headers=auth(app, org.rep_a))).json()
    assert [str(i["id"]) for i in mine["items"]] == [import_id]
    assert (await client.get(f"{URL}/999999", headers=auth(app, org.rep_a))).status_code == 404


async def test_list_pages_by_cursor(app, client, org):
    for i in range(3):
        await upload(client, app, org.rep_a, csv_bytes(f"客户名称\n公司{i}\n"))
    first = (await client.get(f"{URL}?limit=2", headers=auth(app, org.rep_a))).json()
    second = (
        await client.get(
            f"{URL}?limit=2&cursor={first['next_cursor']}", headers=auth(app, org.rep_a)
        )
    ).json()

    assert len(first["items"]) == 2 and first["next_cursor"]
    assert len(second["items"]) == 1 and second["next_cursor"] is None
    ids = [i["id"] for i in first["items"] + second["items"]]
    assert ids == sorted(ids, reverse=True)


async def test_a_denied_import_changes_nothing_for_customers_out_of_scope(app, client, maker, org):
    theirs = await make_customer(maker, org.rep_d, "南方远洋贸易有限公司")
    file = csv_bytes(f"客户ID,联系人姓名\n{theirs.id},张三\n")

    queued = await upload(client, app, org.rep_a, file, entity="contacts")
    await run_job(app)

    done = (await client.get(queued.headers["Location"], headers=auth(app, org.rep_a))).json()
    assert (done["created"], done["failed"]) == (0, 1)


# --- API keys --------------------------------------------------------------------------------


async def make_key(client, app, user, scopes: list[str]) -> dict[str, str]:
    response = await client.post(
        "/api/v1/api-keys", json={"name": "ERP", "scopes": scopes}, headers=auth(app, user)
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def test_api_keys_need_customers_write_and_for_orders_orders_write(app, client, maker, org):
    read_only = await make_key(client, app, org.admin, ["customers:read"])
    customers_only = await make_key(client, app, org.admin, ["customers:read", "customers:write"])
    both = await make_key(
        client, app, org.admin, ["customers:read", "customers:write", "orders:write"]
    )
    orders_file = csv_bytes("订单号,客户名称,下单时间,订单金额\nX1,甲公司,2026-11-20,100\n")

    def send(headers: dict[str, str], content: bytes, entity: str) -> Any:
        return client.post(
            URL,
            data={"entity": entity, "dry_run": "true"},
            files={"file": ("a.csv", content)},
            headers=headers,
        )

    assert (await send(read_only, FILE, "customers")).status_code == 403
    assert (await send(customers_only, FILE, "customers")).status_code == 200
    assert (await send(customers_only, orders_file, "orders")).status_code == 403
    assert (await send(both, orders_file, "orders")).status_code == 200

    # Reading an orders import needs orders:read as well.
    queued = await client.post(
        URL, data={"entity": "orders"}, files={"file": ("a.csv", orders_file)}, headers=both
    )
    assert queued.status_code == 202, queued.text
    assert (await client.get(queued.headers["Location"], headers=both)).status_code == 403
    listed = (await client.get(URL, headers=customers_only)).json()
    assert listed["items"] == []
    assert await count(maker, Customer) == 0
