"""Customer lists: filters, search, nearby, sort, cursor pages, and no N+1 queries (SPEC B5, A4)."""

from __future__ import annotations

import datetime as dt

import pytest

from app.models import CustomerTag
from tests.factories import auth, count_statements, make_contact, make_customer, make_org

WEST_LAKE = (30.2425, 120.1487)  # 杭州 西湖


@pytest.fixture
async def org(maker):
    return await make_org(maker)


async def ids(client, app, user, **params):
    response = await client.get("/api/v1/customers", params=params, headers=auth(app, user))
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["items"]]


async def test_filters_on_columns(app, client, maker, org):
    a = await make_customer(
        maker,
        org.rep_a,
        "甲",
        level="A",
        industry="制造业",
        source="展会",
        province="浙江省",
        city="杭州市",
    )
    b = await make_customer(
        maker,
        org.rep_a,
        "乙",
        level="B",
        industry="零售",
        source="地推",
        province="广东省",
        city="深圳市",
        kind="person",
        gender="female",
    )
    c = await make_customer(
        maker,
        org.rep_a,
        "丙",
        level="A",
        industry="零售",
        source="展会",
        province="浙江省",
        city="宁波市",
        deal_status="signed",
    )
    user = org.rep_a
    assert set(await ids(client, app, user, level="A")) == {a.id, c.id}
    assert set(await ids(client, app, user, level=["A", "B"])) == {a.id, b.id, c.id}
    assert await ids(client, app, user, industry="零售", source="展会") == [c.id]
    assert set(await ids(client, app, user, province="浙江省")) == {a.id, c.id}
    assert await ids(client, app, user, city="深圳市") == [b.id]
    assert await ids(client, app, user, kind="person") == [b.id]
    assert await ids(client, app, user, gender="female") == [b.id]
    assert await ids(client, app, user, deal_status="signed") == [c.id]
    assert await ids(client, app, user, owner_id=org.rep_b.id) == []


async def test_filter_by_department_and_dates(app, client, maker, org):
    east = await make_customer(maker, org.rep_a, "东")
    south = await make_customer(maker, org.rep_d, "南")
    recent = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    touched = await make_customer(maker, org.rep_d, "跟进", last_follow_up_at=recent)
    await make_customer(maker, org.rep_d, "久未跟进", last_follow_up_at=old)
    assert await ids(client, app, org.admin, department_id=org.east.id) == [east.id]
    assert south.id in await ids(client, app, org.admin, department_id=org.south.id)
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=7)).isoformat()
    assert await ids(client, app, org.admin, last_follow_up_from=since) == [touched.id]
    naive = await client.get(
        "/api/v1/customers",
        params={"created_from": "2026-01-01T00:00:00"},
        headers=auth(app, org.admin),
    )
    assert naive.status_code == 422


async def test_search_by_name_phone_and_contact(app, client, maker, org):
    by_name = await make_customer(maker, org.rep_a, "杭州青禾科技有限公司", phones=["13800001111"])
    by_phone = await make_customer(maker, org.rep_a, "另一家", phones=["13912345678"])
    by_contact = await make_customer(maker, org.rep_a, "第三家", phones=[])
    await make_contact(maker, by_contact, "欧阳青禾")
    gone = await make_contact(maker, by_phone, "青禾离职")
    del gone
    assert set(await ids(client, app, org.rep_a, q="青禾")) == {
        by_name.id,
        by_contact.id,
        by_phone.id,
    }
    assert await ids(client, app, org.rep_a, q="5678") == [by_phone.id]
    assert await ids(client, app, org.rep_a, q="139-1234") == [by_phone.id]
    assert await ids(client, app, org.rep_a, q="100%") == []  # LIKE wildcards are literal


async def test_filter_by_tags_requires_all(app, client, maker, org, db):
    admin = auth(app, org.admin)
    group = (await client.post("/api/v1/tag-groups", json={"name": "特征"}, headers=admin)).json()
    t1 = (
        await client.post(
            "/api/v1/tags", json={"group_id": group["id"], "name": "连锁"}, headers=admin
        )
    ).json()["id"]
    t2 = (
        await client.post(
            "/api/v1/tags", json={"group_id": group["id"], "name": "外资"}, headers=admin
        )
    ).json()["id"]
    both = await make_customer(maker, org.rep_a, "双标签")
    one = await make_customer(maker, org.rep_a, "单标签")
    removed = await make_customer(maker, org.rep_a, "已移除")
    db.add_all(
        [
            CustomerTag(customer_id=both.id, tag_id=t1),
            CustomerTag(customer_id=both.id, tag_id=t2),
            CustomerTag(customer_id=one.id, tag_id=t1),
            CustomerTag(customer_id=removed.id, tag_id=t1, removed_at=dt.datetime.now(dt.UTC)),
        ]
    )
    await db.commit()
    assert set(await ids(client, app, org.rep_a, tag_id=t1)) == {both.id, one.id}
    assert await ids(client, app, org.rep_a, tag_id=[t1, t2]) == [both.id]


async def test_filter_by_custom_fields(app, client, maker, org):
    admin = auth(app, org.admin)
    for body in (
        {"key": "budget", "label": "预算", "type": "number"},
        {"key": "channels", "label": "渠道", "type": "multi_select", "options": ["线上", "门店"]},
        {"key": "size", "label": "规模", "type": "single_select", "options": ["小", "大"]},
        {"key": "due", "label": "到期", "type": "date"},
    ):
        assert (
            await client.post("/api/v1/custom-fields", json=body, headers=admin)
        ).status_code == 201
    small = await make_customer(
        maker,
        org.rep_a,
        "小",
        custom_fields={"budget": 1000, "channels": ["线上"], "size": "小", "due": "2026-03-01"},
    )
    big = await make_customer(
        maker,
        org.rep_a,
        "大",
        custom_fields={
            "budget": 90000,
            "channels": ["线上", "门店"],
            "size": "大",
            "due": "2027-03-01",
        },
    )
    await make_customer(maker, org.rep_a, "空", custom_fields={})
    user = org.rep_a
    assert await ids(client, app, user, **{"cf.size": "大"}) == [big.id]
    assert set(await ids(client, app, user, **{"cf.channels": "线上"})) == {small.id, big.id}
    assert await ids(client, app, user, **{"cf.channels": "门店"}) == [big.id]
    assert await ids(client, app, user, **{"cf.budget.min": "5000"}) == [big.id]
    assert await ids(client, app, user, **{"cf.budget.max": "5000"}) == [small.id]
    assert await ids(client, app, user, **{"cf.due.max": "2026-12-31"}) == [small.id]
    for bad in (
        {"cf.nope": "1"},
        {"cf.budget.min": "lots"},
        {"cf.size": "中"},
        {"cf.size.min": "小"},
    ):
        response = await client.get("/api/v1/customers", params=bad, headers=auth(app, user))
        assert response.status_code == 422, bad


async def test_nearby_finds_customers_within_radius_nearest_first(app, client, maker, org):
    near = await make_customer(maker, org.rep_a, "近", lat=30.2460, lng=120.1500)  # ~0.4 km
    mid = await make_customer(maker, org.rep_a, "中", lat=30.2700, lng=120.1600)  # ~3.3 km
    await make_customer(maker, org.rep_a, "远", lat=30.3500, lng=120.3000)  # ~19 km
    await make_customer(maker, org.rep_a, "无位置")
    response = await client.get(
        "/api/v1/customers",
        params={"near": f"{WEST_LAKE[0]},{WEST_LAKE[1]}", "radius_km": 5},
        headers=auth(app, org.rep_a),
    )
    items = response.json()["items"]
    assert [c["id"] for c in items] == [near.id, mid.id]
    assert 0.3 < items[0]["distance_km"] < 0.6 and 2.5 < items[1]["distance_km"] < 4
    paged = await client.get(
        "/api/v1/customers",
        params={"near": f"{WEST_LAKE[0]},{WEST_LAKE[1]}", "radius_km": 5, "limit": 1},
        headers=auth(app, org.rep_a),
    )
    second = await client.get(
        "/api/v1/customers",
        params={
            "near": f"{WEST_LAKE[0]},{WEST_LAKE[1]}",
            "radius_km": 5,
            "limit": 1,
            "cursor": paged.json()["next_cursor"],
        },
        headers=auth(app, org.rep_a),
    )
    assert [c["id"] for c in second.json()["items"]] == [mid.id]
    for bad in ("abc", "91,0", "30.2"):
        assert (
            await client.get(
                "/api/v1/customers", params={"near": bad}, headers=auth(app, org.rep_a)
            )
        ).status_code == 422


@pytest.mark.parametrize(
    "sort",
    ["created_at", "-created_at", "name", "-name", "last_follow_up_at", "-last_follow_up_at"],
)
async def test_cursor_pages_cover_every_row_once_in_order(app, client, maker, org, sort):
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for i in range(23):
        follow = None if i % 4 == 0 else base + dt.timedelta(days=i % 5)  # ties and NULLs
        await make_customer(
            maker,
            org.rep_a,
            f"客户{i:02d}",
            created_at=base + dt.timedelta(hours=i % 7),
            last_follow_up_at=follow,
        )
    seen, cursor = [], None
    while True:
        params = {"sort": sort, "limit": 5, **({"cursor": cursor} if cursor else {})}
        body = (
            await client.get("/api/v1/customers", params=params, headers=auth(app, org.rep_a))
        ).json()
        seen += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 23 and len({c["id"] for c in seen}) == 23
    key = sort.lstrip("-")
    values = [(c[key] is None, c[key] or "", c["id"]) for c in seen]
    non_null = [v for v in values if not v[0]]
    ordered = sorted(non_null, key=lambda v: (v[1], v[2]), reverse=sort.startswith("-"))
    assert non_null == ordered
    assert all(v[0] for v in values[len(non_null) :])  # NULLs last


async def test_limit_is_bounded_and_bad_cursor_rejected(app, client, org):
    assert (
        await client.get("/api/v1/customers", params={"limit": 201}, headers=auth(app, org.rep_a))
    ).status_code == 422
    assert (
        await client.get("/api/v1/customers", params={"limit": 0}, headers=auth(app, org.rep_a))
    ).status_code == 422
    bad = await client.get(
        "/api/v1/customers", params={"cursor": "garbage!"}, headers=auth(app, org.rep_a)
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "cursor"]
    assert (
        await client.get(
            "/api/v1/customers", params={"sort": "password"}, headers=auth(app, org.rep_a)
        )
    ).status_code == 422


async def test_list_page_costs_the_same_statements_for_5_or_50_rows(app, client, maker, org, db):
    admin = auth(app, org.admin)
    group = (await client.post("/api/v1/tag-groups", json={"name": "特征"}, headers=admin)).json()
    tag = (
        await client.post(
            "/api/v1/tags", json={"group_id": group["id"], "name": "连锁"}, headers=admin
        )
    ).json()["id"]
    for i in range(50):
        customer = await make_customer(maker, org.rep_a if i % 2 else org.rep_b, f"客户{i}")
        db.add(CustomerTag(customer_id=customer.id, tag_id=tag))
    await db.commit()
    counts = {}
    manager = auth(app, org.mgr_east)
    assert (await client.get("/api/v1/me", headers=manager)).is_success  # builds the principal
    for limit in (5, 50):
        with count_statements(app.state.engine) as statements:
            response = await client.get(
                "/api/v1/customers", params={"limit": limit}, headers=manager
            )
        assert len(response.json()["items"]) == limit
        assert all(
            len(c["tags"]) == 1 and c["owner"]["display_name"] for c in response.json()["items"]
        )
        counts[limit] = len(statements)
    # The access stamp (the principal is reused), the page, its tags.
    assert counts[5] == counts[50] <= 4, counts


async def test_facets_list_values_in_scope(app, client, maker, org):
    await make_customer(
        maker,
        org.rep_a,
        "甲",
        industry="制造业",
        source="展会",
        province="浙江省",
        city="杭州市",
        level="A",
    )
    await make_customer(
        maker,
        org.rep_d,
        "乙",
        industry="零售",
        source="地推",
        province="广东省",
        city="深圳市",
        level="B",
    )
    facets = (await client.get("/api/v1/customers/facets", headers=auth(app, org.rep_a))).json()
    assert facets == {
        "industries": ["制造业"],
        "sources": ["展会"],
        "provinces": ["浙江省"],
        "cities": ["杭州市"],
        "levels": ["A"],
    }


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("青", {"青禾科技", "长青贸易", "禾青贸易"}),  # one character: plain scan
        ("青禾", {"青禾科技"}),  # two characters: the bigram index on PostgreSQL
        ("禾科技", {"青禾科技"}),
        ("acme", {"ACME Trading Co."}),  # case-insensitive
        ("Trading", {"ACME Trading Co."}),
        ("科技有限", set()),
        ("青禾贸易", set()),  # every pair present somewhere, but not as one substring
    ],
)
async def test_name_search_finds_exact_substrings(app, client, maker, org, q, expected):
    names = ["青禾科技", "长青贸易", "ACME Trading Co.", "禾青贸易"]
    by_id = {(await make_customer(maker, org.rep_a, n, phones=[])).id: n for n in names}
    found = await ids(client, app, org.rep_a, q=q)
    assert {by_id[i] for i in found} == expected
