"""Personal data (SPEC J4): export everything held about a customer, erase (anonymise) it while
orders and aggregates stay, and log both."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select

from app.models import AuditEvent, Contact, Customer, CustomerPhone, Order, PersonalDataLog
from tests.analytics.conftest import add_order, at, make_products
from tests.factories import auth, make_customer, make_role, make_user
from tests.privacy.conftest import set_levels

PHONE = "13812345678"
CONTACT_PHONE = "13700001111"


async def held_customer(app: Any, client: Any, org: Any, **overrides: Any) -> dict[str, Any]:
    """A person owned by rep_a, with a contact, a follow-up, a change and an order."""
    headers = auth(app, org.rep_a)
    body = {
        "name": "张三",
        "kind": "person",
        "phones": [PHONE],
        "email": "zhang@example.com",
        "address": "北京市朝阳区建国路88号",
        "notes": "喜欢早上联系",
        **overrides,
    }
    created = await client.post("/api/v1/customers", json=body, headers=headers)
    assert created.status_code == 201, created.text
    customer = created.json()
    contact = await client.post(
        f"/api/v1/customers/{customer['id']}/contacts",
        json={"name": "张太太", "phones": [CONTACT_PHONE], "wechat": "zhang_tt"},
        headers=headers,
    )
    assert contact.status_code == 201, contact.text
    follow_up = await client.post(
        "/api/v1/follow-ups",
        json={"customer_id": customer["id"], "type": "call", "content": f"打了 {PHONE}"},
        headers=headers,
    )
    assert follow_up.status_code == 201, follow_up.text
    url = f"/api/v1/customers/{customer['id']}"
    etag = (await client.get(url, headers=headers)).headers["ETag"]
    changed = await client.patch(
        url, json={"email": "zhang3@example.com"}, headers={**headers, "If-Match": etag}
    )
    assert changed.status_code == 200, changed.text
    return {**customer, "contact_id": contact.json()["id"]}


async def officer(maker: Any, org: Any, scope: str = "all") -> Any:
    async with maker() as session, session.begin():
        role = await make_role(session, f"dpo-{scope}", ["personal_data.manage"], scope)
        return await make_user(session, f"dpo_{scope}", [role], org.south)


# --- export --------------------------------------------------------------------------------------


async def test_the_export_holds_everything_about_the_customer(app, client, maker, org):
    customer = await held_customer(app, client, org)
    async with maker() as session:
        stored = await session.get(Customer, customer["id"])
    [product] = await make_products(maker, 1)
    await add_order(maker, stored, at("2026-11-01"), 12_300, lines=[(product, 1, 12_300, 0)])
    response = await client.get(
        f"/api/v1/customers/{customer['id']}/personal-data",
        params={"reason": "本人申请查阅 (DSAR #1)"},
        headers=auth(app, org.admin),
    )
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["customer"]["phones"] == [PHONE]
    assert data["customer"]["email"] == "zhang3@example.com"
    assert "email_normalized" not in data["customer"]
    assert [c["name"] for c in data["contacts"]] == ["张太太"]
    assert data["contacts"][0]["wechat"] == "zhang_tt"
    assert [f["content"] for f in data["follow_ups"]] == [f"打了 {PHONE}"]
    [order] = data["orders"]
    assert order["amount_cents"] == 12_300 and len(order["lines"]) == 1
    assert [e["action"] for e in data["ownership_history"]] == ["created"]
    actions = [e["action"] for e in data["timeline"]]
    assert actions[0] == "created" and "updated" in actions and "contact_created" in actions
    async with maker() as session:
        [entry] = (await session.scalars(select(PersonalDataLog))).all()
    assert entry.action == "personal_data.export"
    assert entry.customer_id == customer["id"] and entry.actor_id == org.admin.id
    assert entry.reason == "本人申请查阅 (DSAR #1)"
    assert entry.row_count == 1 + sum(len(v) for v in data.values() if isinstance(v, list))


async def test_the_export_keeps_to_the_callers_field_levels(app, client, maker, org):
    customer = await held_customer(app, client, org)
    await set_levels(
        client, app, org, org.roles["admin"], phones="masked", contact__wechat="hidden"
    )
    data = (
        await client.get(
            f"/api/v1/customers/{customer['id']}/personal-data",
            params={"reason": "x"},
            headers=auth(app, org.admin),
        )
    ).json()
    assert data["customer"]["phones"] == ["138****5678"]
    assert data["contacts"][0]["wechat"] is None
    assert PHONE not in json.dumps([e["changes"] for e in data["timeline"]])


async def test_the_export_needs_the_permission_the_scope_and_a_reason(app, client, maker, org):
    customer = await held_customer(app, client, org)
    url = f"/api/v1/customers/{customer['id']}/personal-data"
    assert (await client.get(url, params={"reason": "x"})).status_code == 401
    # The owner may read the customer but has no personal_data.manage.
    owner = await client.get(url, params={"reason": "x"}, headers=auth(app, org.rep_a))
    assert owner.status_code == 403
    outside = await officer(maker, org, "own")
    far = await client.get(url, params={"reason": "x"}, headers=auth(app, outside))
    assert far.status_code == 404
    missing = await client.get(
        "/api/v1/customers/9999/personal-data", params={"reason": "x"}, headers=auth(app, org.admin)
    )
    assert missing.status_code == 404
    no_reason = await client.get(url, headers=auth(app, org.admin))
    assert no_reason.status_code == 422
    inside = await officer(maker, org, "all")
    ok = await client.get(url, params={"reason": "x"}, headers=auth(app, inside))
    assert ok.status_code == 200, ok.text
    async with maker() as session:
        assert await session.scalar(select(func.count()).select_from(PersonalDataLog)) == 1


async def test_api_keys_cannot_take_out_or_erase_personal_data(app, client, maker, org):
    customer = await held_customer(app, client, org)
    created = await client.post(
        "/api/v1/api-keys",
        json={"name": "ERP", "scopes": ["customers:read", "customers:write"]},
        headers=auth(app, org.admin),
    )
    key = {"Authorization": f"Bearer {created.json()['token']}"}
    url = f"/api/v1/customers/{customer['id']}"
    assert (
        await client.get(f"{url}/personal-data", params={"reason": "x"}, headers=key)
    ).status_code == 403
    erase = await client.post(f"{url}/erase", json={"reason": "x"}, headers=key)
    assert erase.status_code == 403
    assert (await client.get("/api/v1/personal-data-log", headers=key)).status_code == 403


# --- erase ---------------------------------------------------------------------------------------


async def test_erase_anonymises_a_person_and_keeps_orders(app, client, maker, org):
    customer = await held_customer(app, client, org)
    customer_id = customer["id"]
    async with maker() as session:
        stored = await session.get(Customer, customer_id)
    [product] = await make_products(maker, 1)
    await add_order(
        maker, stored, at("2026-11-01"), 12_300, 4_000, lines=[(product, 2, 6_150, 2_000)]
    )
    response = await client.post(
        f"/api/v1/customers/{customer_id}/erase",
        json={"reason": "本人要求删除"},
        headers=auth(app, org.admin),
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert {"name", "phones", "email", "address", "notes", "contact.name"} <= set(
        result["erased_fields"]
    )
    assert result["contacts"] == 1 and result["timeline_entries_scrubbed"] >= 3

    shown = (
        await client.get(f"/api/v1/customers/{customer_id}", headers=auth(app, org.rep_a))
    ).json()
    assert shown["name"] == f"已删除客户 #{customer_id}"
    assert shown["phones"] == [] and shown["email"] is None and shown["address"] is None
    assert shown["notes"] is None and shown["kind"] == "person"
    [contact] = (
        await client.get(f"/api/v1/customers/{customer_id}/contacts", headers=auth(app, org.rep_a))
    ).json()
    assert contact["name"] == f"已删除联系人 #{customer['contact_id']}"
    assert contact["phones"] == [] and contact["wechat"] is None
    search = await client.get(
        "/api/v1/customers", params={"q": "00001111"}, headers=auth(app, org.rep_a)
    )
    assert search.json()["items"] == []

    async with maker() as session:
        assert (
            await session.scalar(
                select(func.count())
                .select_from(CustomerPhone)
                .where(CustomerPhone.customer_id == customer_id)
            )
            == 0
        )
        order = await session.scalar(select(Order).where(Order.customer_id == customer_id))
        assert order is not None and order.amount_cents == 12_300 and order.cost_cents == 4_000
        events = (
            await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.customer_id == customer_id)
                .order_by(AuditEvent.id)
            )
        ).all()
        [entry] = (await session.scalars(select(PersonalDataLog))).all()
    history = json.dumps([e.changes for e in events], ensure_ascii=False)
    for value in (PHONE, CONTACT_PHONE, "zhang@example.com", "zhang3", "张三", "张太太", "建国路"):
        assert value not in history, value
    assert events[-1].action == "erased"
    assert events[-1].changes["erased_fields"]["after"] == result["erased_fields"]
    assert entry.action == "personal_data.erase" and entry.reason == "本人要求删除"
    assert entry.customer_id == customer_id and entry.row_count >= 2
    # Analytics still count the order against the customer.
    orders = await client.get(
        "/api/v1/orders", params={"customer_id": customer_id}, headers=auth(app, org.admin)
    )
    assert [o["id"] for o in orders.json()["items"]] == [order.id]


async def test_a_second_erase_is_harmless(app, client, maker, org):
    customer = await held_customer(app, client, org)
    url = f"/api/v1/customers/{customer['id']}/erase"
    first = await client.post(url, json={"reason": "a"}, headers=auth(app, org.admin))
    assert first.status_code == 200, first.text
    async with maker() as session:
        version = (await session.get(Customer, customer["id"])).version
        events = await session.scalar(select(func.count()).select_from(AuditEvent))
    second = await client.post(url, json={"reason": "b"}, headers=auth(app, org.admin))
    assert second.status_code == 200, second.text
    assert second.json()["erased_fields"] == [] and second.json()["contacts"] == 0
    async with maker() as session:
        assert (await session.get(Customer, customer["id"])).version == version
        assert await session.scalar(select(func.count()).select_from(AuditEvent)) == events
        assert await session.scalar(select(func.count()).select_from(PersonalDataLog)) == 2


async def test_a_company_keeps_its_name(app, client, maker, org):
    company = await make_customer(
        maker, org.rep_a, "青禾科技有限公司", phones=[PHONE], email="info@example.com"
    )
    response = await client.post(
        f"/api/v1/customers/{company.id}/erase", json={"reason": "x"}, headers=auth(app, org.admin)
    )
    assert response.status_code == 200, response.text
    assert "name" not in response.json()["erased_fields"]
    async with maker() as session:
        stored = await session.get(Customer, company.id)
        assert stored.name == "青禾科技有限公司" and stored.phones == [] and stored.email is None
        assert (await session.scalar(select(func.count()).select_from(Contact))) == 0


async def test_erase_needs_the_permission_the_scope_and_a_reason(app, client, maker, org):
    customer = await held_customer(app, client, org)
    url = f"/api/v1/customers/{customer['id']}/erase"
    assert (await client.post(url, json={"reason": "x"})).status_code == 401
    owner = await client.post(url, json={"reason": "x"}, headers=auth(app, org.rep_a))
    assert owner.status_code == 403
    outside = await officer(maker, org, "own")
    far = await client.post(url, json={"reason": "x"}, headers=auth(app, outside))
    assert far.status_code == 404
    for body in ({}, {"reason": ""}, {"reason": "x", "force": True}):
        bad = await client.post(url, json=body, headers=auth(app, org.admin))
        assert bad.status_code == 422, body
    async with maker() as session:
        stored = await session.get(Customer, customer["id"])
        assert stored.phones == [PHONE] and stored.name == "张三"
        assert await session.scalar(select(func.count()).select_from(PersonalDataLog)) == 0
