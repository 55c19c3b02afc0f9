"""Customer API behaviour: create/read/update/delete, validation, tags, custom fields, duplicates,
ETags, timeline (SPEC B1–B5, A4, A5)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.models import AuditEvent, Customer, CustomerPhone, CustomerTag
from tests.factories import auth, make_contact, make_customer, make_org


@pytest.fixture
async def org(maker):
    return await make_org(maker)


async def create(app, client, user, **body):
    return await client.post("/api/v1/customers", json=body, headers=auth(app, user))


async def make_tags(app, client, admin):
    need = (
        await client.post(
            "/api/v1/tag-groups",
            json={"name": "购买需求", "exclusive": True},
            headers=auth(app, admin),
        )
    ).json()
    feature = (
        await client.post("/api/v1/tag-groups", json={"name": "企业特征"}, headers=auth(app, admin))
    ).json()
    tags = {}
    for group, names in ((need, ["高意向", "低意向"]), (feature, ["连锁经营", "外资企业"])):
        for name in names:
            tags[name] = (
                await client.post(
                    "/api/v1/tags",
                    json={"group_id": group["id"], "name": name},
                    headers=auth(app, admin),
                )
            ).json()["id"]
    return tags


async def test_create_and_read_customer(app, client, org, db):
    response = await create(
        app,
        client,
        org.rep_a,
        name=" 杭州青禾科技有限公司 ",
        phones=["+86 138-1234-5678"],
        email="Info@QingHe.cn",
        province="浙江省",
        city="杭州市",
        lat=30.27,
        lng=120.15,
        industry="信息技术",
        source="展会",
        level="A",
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "杭州青禾科技有限公司"
    assert body["phones"] == ["13812345678"]
    assert body["owner"] == {"id": org.rep_a.id, "display_name": "Rep A"}
    assert body["deal_status"] == "none" and body["version"] == 1
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == f"/api/v1/customers/{body['id']}"
    read = await client.get(f"/api/v1/customers/{body['id']}", headers=auth(app, org.rep_a))
    assert read.json() == body and read.headers["ETag"] == '"1"'
    phones = (
        await db.scalars(
            select(CustomerPhone.number).where(CustomerPhone.customer_id == body["id"])
        )
    ).all()
    assert phones == ["13812345678"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x", "level": "Z"}, "level"),
        ({"name": "x", "phones": ["not a phone"]}, "phones"),
        ({"name": "x", "email": "nope"}, "email"),
        ({"name": "x", "lat": 95, "lng": 0}, "lat"),
        ({"name": "x", "owner": 5}, "owner"),
        ({"name": "x", "deal_status": "signed"}, "deal_status"),
        ({"name": "x", "birth_date": "2999-01-01"}, "birth_date"),
    ],
)
async def test_bad_input_is_a_422_problem_and_writes_nothing(app, client, org, db, body, field):
    response = await create(app, client, org.rep_a, **body)
    assert response.status_code == 422
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["type"].endswith("/validation-error") and problem["status"] == 422
    assert any(field in [str(p) for p in e["loc"]] or field in e["msg"] for e in problem["errors"])
    assert await db.scalar(select(func.count()).select_from(Customer)) == 0


async def test_malformed_json_is_a_problem(app, client, org):
    response = await client.post(
        "/api/v1/customers",
        content=b"{not json",
        headers={**auth(app, org.rep_a), "Content-Type": "application/json"},
    )
    assert response.status_code == 422 and response.json()["status"] == 422


async def test_update_needs_if_match(app, client, org, db):
    customer = await make_customer(app.state.sessionmaker, org.rep_a, "甲")
    url = f"/api/v1/customers/{customer.id}"
    missing = await client.patch(url, json={"level": "B"}, headers=auth(app, org.rep_a))
    assert missing.status_code == 428
    stale = await client.patch(
        url, json={"level": "B"}, headers={**auth(app, org.rep_a), "If-Match": '"7"'}
    )
    assert stale.status_code == 412
    assert (await db.get(Customer, customer.id)).level is None
    ok = await client.patch(
        url, json={"level": "B"}, headers={**auth(app, org.rep_a), "If-Match": '"1"'}
    )
    assert ok.status_code == 200 and ok.headers["ETag"] == '"2"'
    replayed = await client.patch(
        url, json={"level": "C"}, headers={**auth(app, org.rep_a), "If-Match": '"1"'}
    )
    assert replayed.status_code == 412


async def test_if_match_naming_no_version_counts_only_for_a_valid_request(app, client, org, db):
    """RFC 9110 §13.2.1 (found by Schemathesis): a bad body or an unknown record answers as such,
    not 412; for a valid request such an If-Match is stale (412) and nothing changes."""
    customer = await make_customer(app.state.sessionmaker, org.rep_a, "甲")
    headers = {**auth(app, org.rep_a), "If-Match": "null"}
    url = f"/api/v1/customers/{customer.id}"
    bad_body = await client.patch(url, json={"level": {"x": 1}}, headers=headers)
    assert bad_body.status_code == 422
    unknown = await client.patch("/api/v1/customers/999999", json={"level": "B"}, headers=headers)
    assert unknown.status_code == 404
    stale = await client.patch(url, json={"level": "B"}, headers=headers)
    assert stale.status_code == 412
    assert (await db.get(Customer, customer.id)).level is None


async def test_json_types_are_not_juggled(app, client, org):
    """`0` is no boolean, `false` no number, a number no date (found by Schemathesis)."""
    for body in (
        {"name": "丙公司", "confirm_duplicate": 0},
        {"name": "丙公司", "birth_date": 0},
        {"name": "丙公司", "lat": True, "lng": 120.1},
    ):
        response = await create(app, client, org.rep_a, **body)
        assert response.status_code == 422, body
    assert (await create(app, client, org.rep_a, name="丙公司", confirm_duplicate=True)).is_success


async def test_update_changes_only_given_fields_and_records_the_diff(app, client, org):
    created = (await create(app, client, org.rep_a, name="乙公司", city="苏州市", level="C")).json()
    url = f"/api/v1/customers/{created['id']}"
    patched = await client.patch(
        url,
        json={"level": "A", "notes": "重点客户"},
        headers={**auth(app, org.rep_a), "If-Match": '"1"'},
    )
    assert patched.status_code == 200
    assert patched.json()["city"] == "苏州市" and patched.json()["level"] == "A"
    timeline = (await client.get(f"{url}/timeline", headers=auth(app, org.rep_a))).json()["items"]
    assert [e["action"] for e in timeline] == ["updated", "created"]
    assert timeline[0]["changes"] == {
        "level": {"before": "C", "after": "A"},
        "notes": {"before": None, "after": "重点客户"},
    }
    assert timeline[0]["actor"] == {"id": org.rep_a.id, "display_name": "Rep A"}
    assert timeline[1]["changes"]["name"] == {"before": None, "after": "乙公司"}


async def test_patch_rejects_null_for_required_fields_and_unknown_fields(app, client, org):
    created = (await create(app, client, org.rep_a, name="丙公司")).json()
    url = f"/api/v1/customers/{created['id']}"
    headers = {**auth(app, org.rep_a), "If-Match": '"1"'}
    assert (await client.patch(url, json={"name": None}, headers=headers)).status_code == 422
    assert (
        await client.patch(url, json={"owner_id": org.rep_b.id}, headers=headers)
    ).status_code == 422
    assert (await client.patch(url, json={"version": 9}, headers=headers)).status_code == 422


async def test_soft_delete_hides_and_keeps_the_record(app, client, org, db):
    customer = await make_customer(app.state.sessionmaker, org.mgr_east, "丁")
    url = f"/api/v1/customers/{customer.id}"
    response = await client.delete(url, headers={**auth(app, org.mgr_east), "If-Match": '"1"'})
    assert response.status_code == 204
    assert (await client.get(url, headers=auth(app, org.mgr_east))).status_code == 404
    listed = (await client.get("/api/v1/customers", headers=auth(app, org.mgr_east))).json()[
        "items"
    ]
    assert listed == []
    stored = await db.get(Customer, customer.id)
    assert stored.deleted_at is not None and stored.deleted_by_id == org.mgr_east.id
    action = await db.scalar(select(AuditEvent.action).where(AuditEvent.customer_id == customer.id))
    assert action == "deleted"


async def test_tags_are_set_and_keep_history(app, client, org, db):
    tags = await make_tags(app, client, org.admin)
    created = (
        await create(
            app, client, org.rep_a, name="标签公司", tag_ids=[tags["高意向"], tags["连锁经营"]]
        )
    ).json()
    assert {t["name"] for t in created["tags"]} == {"高意向", "连锁经营"}
    url = f"/api/v1/customers/{created['id']}"
    patched = await client.patch(
        url,
        json={"tag_ids": [tags["低意向"], tags["连锁经营"]]},
        headers={**auth(app, org.rep_a), "If-Match": '"1"'},
    )
    assert patched.status_code == 200
    assert {t["name"] for t in patched.json()["tags"]} == {"低意向", "连锁经营"}
    assert patched.json()["version"] == 2
    rows = (
        await db.scalars(select(CustomerTag).where(CustomerTag.customer_id == created["id"]))
    ).all()
    closed = [r for r in rows if r.removed_at is not None]
    assert len(rows) == 3 and [r.tag_id for r in closed] == [tags["高意向"]]
    assert closed[0].removed_by_id == org.rep_a.id
    actions = [
        e["action"]
        for e in (await client.get(f"{url}/timeline", headers=auth(app, org.rep_a))).json()["items"]
    ]
    assert actions.count("tag_added") == 3 and actions.count("tag_removed") == 1


async def test_exclusive_tag_group_allows_one_tag(app, client, org, db):
    tags = await make_tags(app, client, org.admin)
    response = await create(
        app, client, org.rep_a, name="冲突", tag_ids=[tags["高意向"], tags["低意向"]]
    )
    assert response.status_code == 422
    assert await db.scalar(select(func.count()).select_from(Customer)) == 0


async def test_unknown_tag_is_rejected(app, client, org):
    response = await create(app, client, org.rep_a, name="x", tag_ids=[999])
    assert response.status_code == 422 and response.json()["errors"][0]["loc"] == [
        "body",
        "tag_ids",
    ]


async def define_fields(app, client, admin):
    for body in (
        {"key": "budget", "label": "预算", "type": "number"},
        {
            "key": "channels",
            "label": "渠道",
            "type": "multi_select",
            "options": ["线上", "门店", "电话"],
        },
        {
            "key": "size",
            "label": "规模",
            "type": "single_select",
            "options": ["小", "中", "大"],
            "required": True,
        },
        {"key": "due", "label": "到期", "type": "date"},
        {"key": "group", "label": "微信群", "type": "text"},
    ):
        response = await client.post("/api/v1/custom-fields", json=body, headers=auth(app, admin))
        assert response.status_code == 201, response.text


async def test_custom_fields_are_validated_on_write(app, client, org, db):
    await define_fields(app, client, org.admin)
    ok = await create(
        app,
        client,
        org.rep_a,
        name="字段公司",
        custom_fields={
            "budget": 50000,
            "channels": ["电话", "线上"],
            "size": "中",
            "due": "2027-01-31",
        },
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["custom_fields"] == {
        "budget": 50000,
        "channels": ["线上", "电话"],
        "size": "中",
        "due": "2027-01-31",
    }
    bad = await create(
        app,
        client,
        org.rep_a,
        name="坏字段",
        custom_fields={"budget": "lots", "channels": ["传真"], "due": "31/01/2027", "nope": 1},
    )
    assert bad.status_code == 422
    locs = {e["loc"][1] for e in bad.json()["errors"]}
    assert locs == {
        "custom_fields.budget",
        "custom_fields.channels",
        "custom_fields.due",
        "custom_fields.nope",
        "custom_fields.size",
    }
    assert await db.scalar(select(func.count()).select_from(Customer)) == 1


async def test_custom_field_update_merges_and_removes(app, client, org):
    await define_fields(app, client, org.admin)
    created = (
        await create(app, client, org.rep_a, name="合并", custom_fields={"size": "小", "budget": 1})
    ).json()
    url = f"/api/v1/customers/{created['id']}"
    patched = await client.patch(
        url,
        json={"custom_fields": {"budget": None, "group": "华东群"}},
        headers={**auth(app, org.rep_a), "If-Match": '"1"'},
    )
    assert patched.status_code == 200
    assert patched.json()["custom_fields"] == {"size": "小", "group": "华东群"}
    cleared = await client.patch(
        url,
        json={"custom_fields": {"size": None}},
        headers={**auth(app, org.rep_a), "If-Match": '"2"'},
    )
    assert cleared.status_code == 422  # required


async def test_only_config_admins_define_fields_and_tags(app, client, org):
    body = {"key": "budget", "label": "预算", "type": "number"}
    assert (
        await client.post("/api/v1/custom-fields", json=body, headers=auth(app, org.rep_a))
    ).status_code == 403
    assert (
        await client.post("/api/v1/tag-groups", json={"name": "g"}, headers=auth(app, org.mgr_east))
    ).status_code == 403
    assert (
        await client.get("/api/v1/custom-fields", headers=auth(app, org.rep_a))
    ).status_code == 200


async def test_duplicate_phone_answers_409_with_matches(app, client, org, db):
    first = (await create(app, client, org.rep_a, name="原有公司", phones=["13900001111"])).json()
    again = await create(app, client, org.rep_a, name="完全不同", phones=["+86 139 0000 1111"])
    assert again.status_code == 409
    problem = again.json()
    assert problem["type"].endswith("/duplicate-customer")
    [match] = problem["duplicates"]
    assert (
        match["id"] == first["id"] and match["matched_on"] == ["phone"] and match["visible"] is True
    )
    assert await db.scalar(select(func.count()).select_from(Customer)) == 1
    confirmed = await create(
        app, client, org.rep_a, name="完全不同", phones=["13900001111"], confirm_duplicate=True
    )
    assert confirmed.status_code == 201


async def test_duplicate_found_through_contact_phone_and_email(app, client, org):
    base = await make_customer(
        app.state.sessionmaker, org.rep_b, "联系人公司", phones=[], email="sales@acme.cn"
    )
    contact = (
        await client.post(
            f"/api/v1/customers/{base.id}/contacts",
            json={"name": "王经理", "phones": ["13700002222"]},
            headers=auth(app, org.rep_b),
        )
    ).json()
    assert contact["phones"] == ["13700002222"]
    by_phone = await create(app, client, org.rep_a, name="别的", phones=["13700002222"])
    assert by_phone.status_code == 409
    masked = by_phone.json()["duplicates"][0]
    assert masked["visible"] is False and masked["id"] is None and masked["name"] == "联***司"
    assert masked["owner_name"] == "Rep B"
    by_email = await create(app, client, org.rep_a, name="另一个", email="SALES@acme.cn")
    assert by_email.status_code == 409 and by_email.json()["duplicates"][0]["matched_on"] == [
        "email"
    ]


async def test_similar_name_is_a_duplicate(app, client, org):
    await create(app, client, org.rep_a, name="杭州青禾科技有限公司")
    same = await create(app, client, org.rep_a, name="杭州青禾科技")
    assert same.status_code == 409 and same.json()["duplicates"][0]["similarity"] == 1.0
    typo = await create(app, client, org.rep_a, name="杭州青和科技有限公司")
    assert typo.status_code == 409
    assert 0.8 <= typo.json()["duplicates"][0]["similarity"] < 1
    different = await create(app, client, org.rep_a, name="杭州远山物流有限公司")
    assert different.status_code == 201


async def test_duplicates_include_recycle_bin(app, client, org):
    gone = await make_customer(
        app.state.sessionmaker, org.rep_a, "已删除公司", phones=["13811112222"]
    )
    await client.delete(
        f"/api/v1/customers/{gone.id}", headers={**auth(app, org.admin), "If-Match": '"1"'}
    )
    response = await client.get(
        "/api/v1/customers/duplicates",
        params={"phone": "13811112222"},
        headers=auth(app, org.rep_a),
    )
    [match] = response.json()["matches"]
    assert match["in_recycle_bin"] is True and match["visible"] is False


async def test_duplicate_check_endpoint_excludes_the_record_being_edited(app, client, org):
    mine = await make_customer(app.state.sessionmaker, org.rep_a, "自己", phones=["13633334444"])
    hits = await client.get(
        "/api/v1/customers/duplicates",
        params={"phone": "13633334444"},
        headers=auth(app, org.rep_a),
    )
    assert [m["id"] for m in hits.json()["matches"]] == [mine.id]
    none = await client.get(
        "/api/v1/customers/duplicates",
        params={"phone": "13633334444", "exclude_id": mine.id},
        headers=auth(app, org.rep_a),
    )
    assert none.json()["matches"] == []


async def test_contacts_crud_with_etags_and_timeline(app, client, org, db):
    customer = await make_customer(app.state.sessionmaker, org.rep_a, "联系人测试")
    url = f"/api/v1/customers/{customer.id}/contacts"
    created = await client.post(
        url,
        json={"name": "李总", "title": "总经理", "is_primary": True},
        headers=auth(app, org.rep_a),
    )
    assert created.status_code == 201
    contact_url = f"/api/v1/contacts/{created.json()['id']}"
    read = await client.get(contact_url, headers=auth(app, org.rep_a))
    assert read.headers["ETag"] == '"1"'
    patched = await client.patch(
        contact_url, json={"title": "董事长"}, headers={**auth(app, org.rep_a), "If-Match": '"1"'}
    )
    assert patched.status_code == 200 and patched.json()["title"] == "董事长"
    assert (await client.delete(contact_url, headers=auth(app, org.rep_a))).status_code == 428
    assert (
        await client.delete(contact_url, headers={**auth(app, org.rep_a), "If-Match": '"2"'})
    ).status_code == 204
    assert (await client.get(url, headers=auth(app, org.rep_a))).json() == []
    actions = [
        e["action"]
        for e in (
            await client.get(
                f"/api/v1/customers/{customer.id}/timeline", headers=auth(app, org.rep_a)
            )
        ).json()["items"]
    ]
    assert actions == ["contact_deleted", "contact_updated", "contact_created"]


async def test_timeline_pages_by_cursor(app, client, org):
    created = (await create(app, client, org.rep_a, name="时间线")).json()
    url = f"/api/v1/customers/{created['id']}"
    version = 1
    for level in ("A", "B", "C", "A"):
        version = int(
            (
                await client.patch(
                    url,
                    json={"level": level},
                    headers={**auth(app, org.rep_a), "If-Match": f'"{version}"'},
                )
            )
            .headers["ETag"]
            .strip('"')
        )
    first = (
        await client.get(f"{url}/timeline", params={"limit": 3}, headers=auth(app, org.rep_a))
    ).json()
    assert len(first["items"]) == 3 and first["next_cursor"]
    second = (
        await client.get(
            f"{url}/timeline",
            params={"limit": 3, "cursor": first["next_cursor"]},
            headers=auth(app, org.rep_a),
        )
    ).json()
    assert [e["action"] for e in second["items"]] == ["updated", "created"] and second[
        "next_cursor"
    ] is None


async def test_unknown_route_and_method_are_problems(app, client, org):
    missing = await client.get("/api/v1/nothing-here", headers=auth(app, org.rep_a))
    assert (
        missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    )
    wrong = await client.put("/api/v1/customers", headers=auth(app, org.rep_a))
    assert wrong.status_code == 405 and wrong.json()["status"] == 405


async def test_contact_with_customer_listed(app, client, org):
    customer = await make_customer(app.state.sessionmaker, org.rep_a, "有联系人")
    await make_contact(app.state.sessionmaker, customer, "张三", is_primary=False)
    await make_contact(app.state.sessionmaker, customer, "李四", is_primary=True)
    names = [
        c["name"]
        for c in (
            await client.get(
                f"/api/v1/customers/{customer.id}/contacts", headers=auth(app, org.rep_a)
            )
        ).json()
    ]
    assert names == ["李四", "张三"]
