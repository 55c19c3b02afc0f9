"""Custom fields, tag groups and tags: who may read and write them (SPEC B2)."""

from __future__ import annotations

import pytest

from tests.factories import auth, make_org


@pytest.fixture
async def org(maker):
    return await make_org(maker)


WRITE_ROUTES = [
    ("POST", "/api/v1/custom-fields", {"key": "k", "label": "l", "type": "text"}),
    ("PATCH", "/api/v1/custom-fields/{field}", {"label": "x"}),
    ("DELETE", "/api/v1/custom-fields/{field}", None),
    ("POST", "/api/v1/tag-groups", {"name": "g2"}),
    ("PATCH", "/api/v1/tag-groups/{group}", {"name": "x"}),
    ("DELETE", "/api/v1/tag-groups/{group}", None),
    ("POST", "/api/v1/tags", {"group_id": 0, "name": "t2"}),
    ("PATCH", "/api/v1/tags/{tag}", {"name": "x"}),
    ("DELETE", "/api/v1/tags/{tag}", None),
]


async def _fixtures(app, client, admin):
    headers = auth(app, admin)
    field = (
        await client.post(
            "/api/v1/custom-fields",
            json={"key": "f", "label": "F", "type": "text"},
            headers=headers,
        )
    ).json()
    group = (await client.post("/api/v1/tag-groups", json={"name": "g"}, headers=headers)).json()
    tag = (
        await client.post(
            "/api/v1/tags", json={"group_id": group["id"], "name": "t"}, headers=headers
        )
    ).json()
    return {"field": field["id"], "group": group["id"], "tag": tag["id"]}


@pytest.mark.parametrize(("method", "url", "body"), WRITE_ROUTES)
async def test_only_config_admins_write(app, client, org, method, url, body):
    ids = await _fixtures(app, client, org.admin)
    url = url.format(**ids)
    if body and "group_id" in body:
        body = {**body, "group_id": ids["group"]}
    for user in (org.rep_a, org.mgr_east):
        response = await client.request(
            method, url, json=body, headers={**auth(app, user), "If-Match": '"1"'}
        )
        assert response.status_code == 403, (user.username, method, url)
    assert (
        await client.request(method, url, json=body, headers={"If-Match": '"1"'})
    ).status_code == 401
    groups = (await client.get("/api/v1/tag-groups", headers=auth(app, org.admin))).json()
    fields = (await client.get("/api/v1/custom-fields", headers=auth(app, org.admin))).json()
    assert [g["name"] for g in groups] == ["g"] and [t["name"] for t in groups[0]["tags"]] == ["t"]
    assert [(f["key"], f["label"]) for f in fields] == [("f", "F")]


@pytest.mark.parametrize("url", ["/api/v1/custom-fields", "/api/v1/tag-groups", "/api/v1/tags"])
async def test_everyone_signed_in_reads_configuration(app, client, org, url):
    assert (await client.get(url, headers=auth(app, org.rep_a))).status_code == 200
    assert (await client.get(url)).status_code == 401


async def test_admin_edits_with_etags(app, client, org):
    ids = await _fixtures(app, client, org.admin)
    headers = auth(app, org.admin)
    url = f"/api/v1/tags/{ids['tag']}"
    etag = (await client.get(url, headers=headers)).headers["ETag"]
    renamed = await client.patch(url, json={"name": "新名"}, headers={**headers, "If-Match": etag})
    assert renamed.status_code == 200 and renamed.json()["name"] == "新名"
    stale = await client.patch(url, json={"name": "再改"}, headers={**headers, "If-Match": etag})
    assert stale.status_code == 412
    busy = await client.delete(
        f"/api/v1/tag-groups/{ids['group']}", headers={**headers, "If-Match": '"1"'}
    )
    assert busy.status_code == 409  # still holds a tag


async def test_select_field_options_are_validated(app, client, org):
    headers = auth(app, org.admin)
    no_options = {"key": "s", "label": "S", "type": "single_select"}
    assert (
        await client.post("/api/v1/custom-fields", json=no_options, headers=headers)
    ).status_code == 422
    stray = {"key": "t", "label": "T", "type": "text", "options": ["a"]}
    assert (
        await client.post("/api/v1/custom-fields", json=stray, headers=headers)
    ).status_code == 422
    bad_key = {"key": "Bad Key", "label": "B", "type": "text"}
    assert (
        await client.post("/api/v1/custom-fields", json=bad_key, headers=headers)
    ).status_code == 422
    ok = {"key": "s", "label": "S", "type": "single_select", "options": ["a", "b"]}
    assert (await client.post("/api/v1/custom-fields", json=ok, headers=headers)).status_code == 201
    assert (await client.post("/api/v1/custom-fields", json=ok, headers=headers)).status_code == 409


async def test_assigned_tag_cannot_be_deleted(app, client, org):
    ids = await _fixtures(app, client, org.admin)
    created = await client.post(
        "/api/v1/customers",
        json={"name": "打标签", "tag_ids": [ids["tag"]]},
        headers=auth(app, org.rep_a),
    )
    assert created.status_code == 201
    response = await client.delete(
        f"/api/v1/tags/{ids['tag']}", headers={**auth(app, org.admin), "If-Match": '"1"'}
    )
    assert response.status_code == 409
