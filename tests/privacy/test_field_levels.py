"""Field levels per role (SPEC J4): hidden / masked / read / edit in every response, search,
export and write; several roles: the most permissive; pools hide on top."""

from __future__ import annotations

import codecs
import csv
import io
from typing import Any

import openpyxl
from sqlalchemy import select

from app.models import Customer, RoleFieldPermission, User
from tests.factories import add_team_member, auth, make_contact, make_customer, make_role, make_user
from tests.pools.conftest import make_pool
from tests.privacy.conftest import set_levels

PHONE = "13812345678"


def read_csv(body: bytes) -> list[list[str]]:
    assert body.startswith(codecs.BOM_UTF8)
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


async def personal_customer(maker: Any, owner: User, **fields: Any) -> Customer:
    return await make_customer(
        maker,
        owner,
        "青禾科技",
        phones=[PHONE],
        email="zhang@example.com",
        address="北京市朝阳区建国路88号",
        lat=39.9,
        lng=116.4,
        notes="喜欢早上联系",
        **fields,
    )


# --- managing the levels -------------------------------------------------------------------------


async def test_levels_are_edit_until_a_role_configures_them(app, client, org):
    url = f"/api/v1/roles/{org.roles['rep'].id}/field-permissions"
    first = await client.get(url, headers=auth(app, org.admin))
    assert first.status_code == 200, first.text
    assert set(first.json()["fields"].values()) == {"edit"}
    assert "contact.wechat" in first.json()["fields"]
    changed = await set_levels(client, app, org, org.roles["rep"], phones="masked", email="hidden")
    assert changed["fields"]["phones"] == "masked"
    assert changed["fields"]["email"] == "hidden"
    assert changed["fields"]["address"] == "edit"
    assert changed["version"] == first.json()["version"] + 1
    again = (await client.get(url, headers=auth(app, org.admin))).json()
    assert again == changed
    # The whole configuration is replaced: what is left out goes back to edit.
    reset = await set_levels(client, app, org, org.roles["rep"], email="read")
    assert reset["fields"]["phones"] == "edit" and reset["fields"]["email"] == "read"


async def test_unknown_fields_or_levels_are_refused_and_change_nothing(app, client, maker, org):
    url = f"/api/v1/roles/{org.roles['rep'].id}/field-permissions"
    etag = (await client.get(url, headers=auth(app, org.admin))).headers["ETag"]
    headers = {**auth(app, org.admin), "If-Match": etag}
    for body in (
        {"fields": {"salary": "hidden"}},
        {"fields": {"phones": "secret"}},
        {"fields": {"phones": "masked"}, "extra": 1},
    ):
        response = await client.put(url, json=body, headers=headers)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    stale = await client.put(
        url, json={"fields": {"phones": "masked"}}, headers={**headers, "If-Match": '"99"'}
    )
    assert stale.status_code == 412
    async with maker() as session:
        assert (await session.scalars(select(RoleFieldPermission))).all() == []


async def test_field_levels_are_managed_by_org_admins_only(app, client, org):
    url = f"/api/v1/roles/{org.roles['rep'].id}/field-permissions"
    assert (await client.get(url)).status_code == 401
    assert (await client.get(url, headers=auth(app, org.mgr_east))).status_code == 403
    refused = await client.put(
        url,
        json={"fields": {"phones": "edit"}},
        headers={**auth(app, org.rep_a), "If-Match": '"1"'},
    )
    assert refused.status_code == 403
    missing = await client.get("/api/v1/roles/999/field-permissions", headers=auth(app, org.admin))
    assert missing.status_code == 404


async def test_an_api_key_never_manages_field_levels(app, client, org):
    created = await client.post(
        "/api/v1/api-keys",
        json={"name": "ERP", "scopes": ["org:read", "org:write", "customers:read"]},
        headers=auth(app, org.admin),
    )
    assert created.status_code == 201, created.text
    key = {"Authorization": f"Bearer {created.json()['token']}"}
    url = f"/api/v1/roles/{org.roles['rep'].id}/field-permissions"
    assert (await client.get(url, headers=key)).status_code == 403
    put = await client.put(url, json={"fields": {}}, headers={**key, "If-Match": '"1"'})
    assert put.status_code == 403


# --- reading -------------------------------------------------------------------------------------


async def test_masked_and_hidden_fields_in_list_and_detail(app, client, maker, org):
    customer = await personal_customer(maker, org.rep_a)
    await set_levels(
        client,
        app,
        org,
        org.roles["rep"],
        phones="masked",
        email="masked",
        address="hidden",
        location="masked",
        notes="read",
    )
    headers = auth(app, org.rep_a)
    [listed] = (await client.get("/api/v1/customers", headers=headers)).json()["items"]
    detail = (await client.get(f"/api/v1/customers/{customer.id}", headers=headers)).json()
    for shown in (listed, detail):
        assert shown["phones"] == ["138****5678"]
        assert shown["email"] == "z***@example.com"
        assert shown["address"] is None
        assert shown["lat"] is None and shown["lng"] is None
        assert shown["notes"] == "喜欢早上联系"
        assert shown["field_levels"] == {
            "address": "hidden",
            "email": "masked",
            "location": "masked",
            "notes": "read",
            "phones": "masked",
        }
    # Other roles are untouched: the manager still reads everything.
    manager = (
        await client.get(f"/api/v1/customers/{customer.id}", headers=auth(app, org.mgr_east))
    ).json()
    assert manager["phones"] == [PHONE] and manager["field_levels"] == {}


async def test_search_never_finds_a_customer_by_a_phone_the_caller_cannot_read(
    app, client, maker, org
):
    customer = await personal_customer(maker, org.rep_a)
    headers = auth(app, org.rep_a)
    contact = await client.post(
        f"/api/v1/customers/{customer.id}/contacts",
        json={"name": "王经理", "phones": ["13700001111"]},
        headers=headers,
    )
    assert contact.status_code == 201, contact.text

    async def found(q: str) -> list[int]:
        response = await client.get("/api/v1/customers", params={"q": q}, headers=headers)
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["items"]]

    assert await found("5678") == [customer.id]
    assert await found("00001111") == [customer.id]
    assert await found("王经理") == [customer.id]
    await set_levels(
        client,
        app,
        org,
        org.roles["rep"],
        phones="masked",
        contact__phones="hidden",
        contact__name="masked",
    )
    assert await found("5678") == []
    assert await found("00001111") == []
    assert await found("王经理") == []
    assert await found("青禾") == [customer.id]


async def test_nearby_search_needs_the_location_readable(app, client, maker, org):
    await personal_customer(maker, org.rep_a)
    params = {"near": "39.9,116.4", "radius_km": 1}
    headers = auth(app, org.rep_a)
    assert (
        len((await client.get("/api/v1/customers", params=params, headers=headers)).json()["items"])
        == 1
    )
    await set_levels(client, app, org, org.roles["rep"], location="masked")
    response = await client.get("/api/v1/customers", params=params, headers=headers)
    assert response.status_code == 200 and response.json()["items"] == []


async def test_contacts_are_masked_and_hidden_per_field(app, client, maker, org):
    customer = await personal_customer(maker, org.rep_a)
    contact = await make_contact(
        maker,
        customer,
        "王小明",
        phones=["13700001111"],
        email="wang@example.com",
        wechat="wang_xm_88",
        title="采购经理",
    )
    await set_levels(
        client,
        app,
        org,
        org.roles["rep"],
        contact__name="masked",
        contact__phones="hidden",
        contact__email="masked",
        contact__wechat="masked",
    )
    headers = auth(app, org.rep_a)
    [listed] = (
        await client.get(f"/api/v1/customers/{customer.id}/contacts", headers=headers)
    ).json()
    one = (await client.get(f"/api/v1/contacts/{contact.id}", headers=headers)).json()
    for shown in (listed, one):
        assert shown["name"] == "王**"
        assert shown["phones"] == []
        assert shown["email"] == "w***@example.com"
        assert shown["wechat"] == "wan****"
        assert shown["title"] == "采购经理"
    # The blanks are never written back.
    async with maker() as session:
        assert (await session.get(type(contact), contact.id)).phones == ["13700001111"]


async def test_exports_mask_in_csv_and_xlsx(app, client, maker, org):
    await personal_customer(maker, org.rep_a)
    await set_levels(client, app, org, org.roles["rep"], phones="masked", email="hidden")
    headers = auth(app, org.rep_a)
    response = await client.get("/api/v1/exports/customers?lang=en", headers=headers)
    assert response.status_code == 200, response.text
    rows = read_csv(response.content)
    header, [row] = rows[0], rows[1:]
    assert row[header.index("Phone")] == "138****5678"
    assert row[header.index("E-mail")] == ""
    assert PHONE not in response.text and "zhang@example.com" not in response.text
    book = await client.get("/api/v1/exports/customers?lang=en&format=xlsx", headers=headers)
    assert book.status_code == 200, book.text
    sheet = openpyxl.load_workbook(io.BytesIO(book.content), read_only=True).active
    cells = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert cells[1][cells[0].index("Phone")] == "138****5678"
    assert cells[1][cells[0].index("E-mail")] in (None, "")
    manager = read_csv(
        (
            await client.get("/api/v1/exports/customers?lang=en", headers=auth(app, org.mgr_east))
        ).content
    )
    assert manager[1][header.index("Phone")] == PHONE


async def test_timeline_and_duplicate_check_withhold_values_too(app, client, maker, org):
    created = await client.post(
        "/api/v1/customers",
        json={"name": "时间线公司", "phones": [PHONE], "email": "li@example.com"},
        headers=auth(app, org.mgr_east),
    )
    assert created.status_code == 201, created.text
    customer_id = created.json()["id"]
    async with maker() as session:
        stored = await session.get(Customer, customer_id)
    await add_team_member(maker, stored, org.rep_a)
    await set_levels(client, app, org, org.roles["rep"], phones="masked", email="hidden")
    headers = auth(app, org.rep_a)
    timeline = await client.get(f"/api/v1/customers/{customer_id}/timeline", headers=headers)
    assert timeline.status_code == 200, timeline.text
    [event] = [e for e in timeline.json()["items"] if e["action"] == "created"]
    assert event["changes"]["phones"] == {"before": [], "after": ["138****5678"]}
    assert "email" not in event["changes"]
    assert event["changes"]["name"]["after"] == "时间线公司"
    duplicates = await client.get(
        "/api/v1/customers/duplicates", params={"phone": PHONE}, headers=headers
    )
    [match] = duplicates.json()["matches"]
    assert match["phones"] == ["138****5678"] and match["email"] is None
    # Found only through a phone it may not read: which customer it is stays unsaid.
    assert match["id"] is None and match["name"] != "时间线公司"
    by_name = await client.get(
        "/api/v1/customers/duplicates", params={"name": "时间线公司"}, headers=headers
    )
    assert by_name.json()["matches"][0]["id"] == customer_id


# --- writing -------------------------------------------------------------------------------------


async def test_writes_to_fields_the_caller_may_not_edit_are_refused(app, client, maker, org):
    customer = await personal_customer(maker, org.rep_a)
    await set_levels(client, app, org, org.roles["rep"], phones="read", email="masked")
    headers = {**auth(app, org.rep_a), "If-Match": '"1"'}
    url = f"/api/v1/customers/{customer.id}"
    refused = await client.patch(
        url, json={"phones": ["13900000000"], "level": "A"}, headers=headers
    )
    assert refused.status_code == 403, refused.text
    problem = refused.json()
    assert "phones" in problem["detail"]
    assert [e["loc"] for e in problem["errors"]] == [["body", "phones"]]
    async with maker() as session:
        stored = await session.get(Customer, customer.id)
        assert stored.phones == [PHONE] and stored.level is None and stored.version == 1
    assert (await client.patch(url, json={"email": None}, headers=headers)).status_code == 403
    # Fields it may edit still change (and the answer withholds the rest).
    allowed = await client.patch(url, json={"level": "A"}, headers=headers)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["phones"] == [PHONE] and allowed.json()["email"] == "z***@example.com"
    created = await client.post(
        "/api/v1/customers",
        json={"name": "新客户", "phones": ["13911112222"]},
        headers=auth(app, org.rep_a),
    )
    assert created.status_code == 403 and "phones" in created.json()["detail"]
    plain = await client.post(
        "/api/v1/customers", json={"name": "无电话客户"}, headers=auth(app, org.rep_a)
    )
    assert plain.status_code == 201, plain.text


async def test_contact_writes_check_each_field(app, client, maker, org):
    customer = await personal_customer(maker, org.rep_a)
    contact = await make_contact(maker, customer, "王小明", phones=["13700001111"])
    await set_levels(client, app, org, org.roles["rep"], contact__phones="masked")
    headers = auth(app, org.rep_a)
    refused = await client.patch(
        f"/api/v1/contacts/{contact.id}",
        json={"phones": ["13700002222"]},
        headers={**headers, "If-Match": '"1"'},
    )
    assert refused.status_code == 403 and "contact.phones" in refused.json()["detail"]
    made = await client.post(
        f"/api/v1/customers/{customer.id}/contacts",
        json={"name": "赵六", "phones": ["13700003333"]},
        headers=headers,
    )
    assert made.status_code == 403
    renamed = await client.patch(
        f"/api/v1/contacts/{contact.id}",
        json={"title": "总监"},
        headers={**headers, "If-Match": '"1"'},
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["title"] == "总监"
    assert renamed.json()["phones"] == ["137****1111"]


# --- combining -----------------------------------------------------------------------------------


async def test_with_two_roles_the_most_permissive_level_wins(app, client, maker, org):
    async with maker() as session, session.begin():
        viewer = await make_role(session, "viewer", [], "own")
        both = await make_user(session, "both_roles", [org.roles["rep"], viewer], org.east)
    customer = await personal_customer(maker, both)
    await set_levels(client, app, org, org.roles["rep"], phones="hidden", email="hidden")
    await set_levels(client, app, org, viewer, phones="read", email="masked")
    shown = (await client.get(f"/api/v1/customers/{customer.id}", headers=auth(app, both))).json()
    assert shown["phones"] == [PHONE]
    assert shown["email"] == "z***@example.com"
    assert shown["field_levels"] == {"email": "masked", "phones": "read"}
    # A role that configures nothing gives edit.
    await set_levels(client, app, org, viewer)
    shown = (await client.get(f"/api/v1/customers/{customer.id}", headers=auth(app, both))).json()
    assert shown["phones"] == [PHONE] and shown["field_levels"] == {}


async def test_a_pools_hidden_fields_apply_on_top_of_the_roles(app, client, maker, org):
    pool = await make_pool(client, app, org, hidden_fields=["email"])
    customer = await personal_customer(maker, org.rep_a)
    released = await client.post(
        f"/api/v1/customers/{customer.id}/release",
        json={"pool_id": pool["id"], "reason": "x"},
        headers=auth(app, org.rep_a),
    )
    assert released.status_code == 200, released.text
    await set_levels(client, app, org, org.roles["rep"], phones="masked", email="read")
    await set_levels(client, app, org, org.roles["manager"], phones="masked")
    url = f"/api/v1/pools/{pool['id']}/customers"
    [member] = (await client.get(url, headers=auth(app, org.rep_b))).json()["items"]
    assert member["phones"] == ["138****5678"]  # the role masks
    assert member["email"] is None  # the pool hides, whatever the role gives
    assert member["hidden_fields"] == ["email"]
    assert member["field_levels"] == {
        "contact.email": "hidden",
        "email": "hidden",
        "phones": "masked",
    }
    # The pool's admin sees what the pool hides, but still as its roles allow.
    [admin] = (await client.get(url, headers=auth(app, org.mgr_east))).json()["items"]
    assert admin["email"] == "zhang@example.com"
    assert admin["phones"] == ["138****5678"]
    searched = await client.get(url, params={"q": "5678"}, headers=auth(app, org.rep_b))
    assert searched.json()["items"] == []


async def test_change_notifications_carry_the_diff_each_recipient_may_read(app, client, maker, org):
    customer = await personal_customer(maker, org.rep_a)
    await add_team_member(maker, customer, org.mgr_hz)
    await set_levels(client, app, org, org.roles["rep"], phones="masked", email="hidden")
    edited = await client.patch(
        f"/api/v1/customers/{customer.id}",
        json={"phones": ["13900001234"], "email": "new@example.com", "level": "B"},
        headers={**auth(app, org.mgr_east), "If-Match": '"1"'},
    )
    assert edited.status_code == 200, edited.text
    [owner_note] = (await client.get("/api/v1/notifications", headers=auth(app, org.rep_a))).json()[
        "items"
    ]
    assert owner_note["data"]["changes"] == {
        "level": {"before": None, "after": "B"},
        "phones": {"before": ["138****5678"], "after": ["139****1234"]},
    }
    assert PHONE not in owner_note["body"] and "new@example.com" not in owner_note["body"]
    [member_note] = (
        await client.get("/api/v1/notifications", headers=auth(app, org.mgr_hz))
    ).json()["items"]
    assert member_note["data"]["changes"]["email"]["after"] == "new@example.com"


async def test_birthdays_the_roles_hide_give_no_reminder(app, client, maker, org):
    import datetime as dt

    from app.models import Reminder
    from app.services.relationship import schedule_relationship_reminders

    now = dt.datetime.now(dt.UTC)
    soon = (now + dt.timedelta(days=2)).date()
    person = await make_customer(
        maker, org.rep_a, "王女士", kind="person", birth_date=soon.replace(year=1992)
    )
    await make_contact(maker, person, "赵小红", birth_date=soon.replace(year=1980))
    await set_levels(
        client, app, org, org.roles["rep"], birth_date="hidden", contact__name="masked"
    )
    assert await schedule_relationship_reminders(maker, 3, now) == 1
    async with maker() as session:
        [reminder] = (await session.scalars(select(Reminder))).all()
    assert reminder.title.startswith("赵** ")
    today = (await client.get("/api/v1/today", headers=auth(app, org.rep_a))).json()
    assert [r["name"] for r in today["relationship"]] == ["赵**"]


async def test_an_import_may_not_write_fields_the_caller_may_not_edit(app, client, maker, org):
    from app.models import Import
    from tests.imports_api.conftest import upload

    await set_levels(client, app, org, org.roles["rep"], phones="read")
    content = "客户名称,手机\n青禾科技,13812345678\n".encode()
    for dry_run in (True, False):
        refused = await upload(client, app, org.rep_a, content, dry_run=dry_run)
        assert refused.status_code == 403, refused.text
        assert "phones" in refused.json()["detail"]
    async with maker() as session:
        assert (await session.scalars(select(Import))).all() == []
    plain = await upload(client, app, org.rep_a, "客户名称\n青禾科技\n".encode(), dry_run=True)
    assert plain.status_code == 200, plain.text
