"""Auto-tag rules over HTTP (SPEC H10): CRUD, validation, authorization, preview and run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from app.models import AuditEvent, Tag
from tests.factories import auth, make_customer, make_role, make_user
from tests.tag_rules.conftest import (
    add_orders,
    give_tag,
    holders,
    make_custom_field,
    make_tags,
    tag_rows,
)

URL = "/api/v1/tag-rules"


def rule_body(tag_id: int, **overrides: Any) -> dict[str, Any]:
    body = {
        "name": "制造业大预算",
        "tag_id": tag_id,
        "action": "sync",
        "conditions": [
            {"field": "industry", "op": "eq", "value": "制造"},
            {"field": "custom.budget", "op": "gte", "value": 100},
        ],
    }
    return {**body, **overrides}


@dataclass
class World:
    """Customers a–g, tag ``key`` (``重点``) held by d, e and g.

    A rule "industry = 制造 and custom.budget ≥ 100" matches a, d, f; so syncing it adds a and f,
    keeps d and removes e and g. Owners: a rep_a and e rep_b (East), b rep_c (Hangzhou, inside
    East), c, d, f, g rep_d (South).
    """

    org: Any
    key: Tag
    customers: dict[str, Any]

    def ids(self, *names: str) -> list[int]:
        return sorted(self.customers[n].id for n in names)


@pytest.fixture
async def world(maker, org) -> World:
    tags = await make_tags(maker, "客户分层", ["重点"])
    await make_custom_field(maker, "budget", "number")
    o = org
    specs = {
        "a": (o.rep_a, "制造", "A", {"budget": 500}),
        "b": (o.rep_c, "制造", "B", {"budget": 50}),
        "c": (o.rep_d, "零售", "A", {}),
        "d": (o.rep_d, "制造", "A", {"budget": 800}),
        "e": (o.rep_b, "零售", "C", {"budget": 900}),
        "f": (o.rep_d, "制造", None, {"budget": 100}),
        "g": (o.rep_d, "零售", "B", {}),
    }
    customers = {
        name: await make_customer(
            maker, owner, f"客户{name}", industry=industry, level=level, custom_fields=custom
        )
        for name, (owner, industry, level, custom) in specs.items()
    }
    for name in ("d", "e", "g"):
        await give_tag(maker, customers[name], tags["重点"])
    return World(org, tags["重点"], customers)


async def create_rule(client, app, admin, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post(URL, json=body, headers=auth(app, admin))
    assert r.status_code == 201, r.text
    return r.json()


# --- CRUD ------------------------------------------------------------------------------------


async def test_admin_creates_reads_lists_and_deletes_a_rule(client, app, world):
    admin = auth(app, world.org.admin)
    r = await client.post(URL, json=rule_body(world.key.id), headers=admin)
    assert r.status_code == 201, r.text
    rule = r.json()
    assert r.headers["ETag"] == '"1"'
    assert r.headers["Location"] == f"{URL}/{rule['id']}"
    assert rule["enabled"] is True
    assert rule["last_run_at"] is None and rule["last_added"] == 0
    assert rule["conditions"][1] == {"field": "custom.budget", "op": "gte", "value": 100}
    assert rule["created_by_id"] == world.org.admin.id

    got = await client.get(f"{URL}/{rule['id']}", headers=admin)
    assert got.status_code == 200 and got.json() == rule and got.headers["ETag"] == '"1"'
    listed = await client.get(URL, headers=admin)
    assert [x["id"] for x in listed.json()] == [rule["id"]]

    gone = await client.delete(f"{URL}/{rule['id']}", headers={**admin, "If-Match": '"1"'})
    assert gone.status_code == 204
    assert (await client.get(f"{URL}/{rule['id']}", headers=admin)).status_code == 404
    assert await holders(app.state.sessionmaker, world.key) == set(world.ids("d", "e", "g"))


async def test_update_needs_the_current_etag(client, app, world):
    admin = auth(app, world.org.admin)
    rule = await create_rule(client, app, world.org.admin, rule_body(world.key.id))
    url = f"{URL}/{rule['id']}"
    change = {"enabled": False, "action": "add"}
    assert (await client.patch(url, json=change, headers=admin)).status_code == 428
    stale = await client.patch(url, json=change, headers={**admin, "If-Match": '"7"'})
    assert stale.status_code == 412
    r = await client.patch(url, json=change, headers={**admin, "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == '"2"'
    assert r.json()["enabled"] is False and r.json()["action"] == "add"


async def test_rule_names_are_unique(client, app, world):
    await create_rule(client, app, world.org.admin, rule_body(world.key.id))
    r = await client.post(URL, json=rule_body(world.key.id), headers=auth(app, world.org.admin))
    assert r.status_code == 409


INVALID = {
    "unknown field": ({"field": "colour", "op": "eq", "value": "red"}, "field"),
    "unknown custom field": ({"field": "custom.nope", "op": "eq", "value": "x"}, "field"),
    "ordering a text field": ({"field": "industry", "op": "gt", "value": "制造"}, "op"),
    "ordering a boolean metric": ({"field": "churn_risk", "op": "lt", "value": True}, "op"),
    "number for a choice field": ({"field": "level", "op": "eq", "value": 5}, "value"),
    "value outside the choices": ({"field": "level", "op": "eq", "value": "Z"}, "value"),
    "unknown rfm segment": ({"field": "rfm_segment", "op": "eq", "value": "vip"}, "value"),
    "string for a number": ({"field": "frequency", "op": "gt", "value": "3"}, "value"),
    "boolean for a number": ({"field": "custom.budget", "op": "gt", "value": True}, "value"),
    "string for a boolean": ({"field": "churn_risk", "op": "eq", "value": "yes"}, "value"),
    "scalar for in": ({"field": "industry", "op": "in", "value": "制造"}, "value"),
    "empty list for not_in": ({"field": "industry", "op": "not_in", "value": []}, "value"),
    "list for eq": ({"field": "industry", "op": "eq", "value": ["制造"]}, "value"),
    "value for is_null": ({"field": "industry", "op": "is_null", "value": "x"}, "value"),
    "missing value for eq": ({"field": "industry", "op": "eq"}, "value"),
}


@pytest.mark.parametrize(("condition", "where"), INVALID.values(), ids=INVALID.keys())
async def test_invalid_condition_is_refused_and_nothing_saved(client, app, world, condition, where):
    admin = auth(app, world.org.admin)
    body = rule_body(world.key.id)
    body["conditions"] = [body["conditions"][0], condition]
    r = await client.post(URL, json=body, headers=admin)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert problem["errors"][0]["loc"] == ["body", "conditions", 1, where]
    assert (await client.get(URL, headers=admin)).json() == []


async def test_unknown_operator_is_refused_by_the_schema(client, app, world):
    body = rule_body(world.key.id)
    body["conditions"] = [{"field": "industry", "op": "like", "value": "制%"}]
    r = await client.post(URL, json=body, headers=auth(app, world.org.admin))
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"][:4] == ["body", "conditions", 0, "op"]


async def test_unknown_tag_is_refused_and_nothing_saved(client, app, world):
    admin = auth(app, world.org.admin)
    r = await client.post(URL, json=rule_body(world.key.id + 100), headers=admin)
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "tag_id"]
    assert (await client.get(URL, headers=admin)).json() == []


async def test_invalid_update_changes_nothing(client, app, world):
    admin = auth(app, world.org.admin)
    rule = await create_rule(client, app, world.org.admin, rule_body(world.key.id))
    bad = {"conditions": [{"field": "level", "op": "gte", "value": "A"}], "name": "新名字"}
    r = await client.patch(f"{URL}/{rule['id']}", json=bad, headers={**admin, "If-Match": '"1"'})
    assert r.status_code == 422
    assert (await client.get(f"{URL}/{rule['id']}", headers=admin)).json() == rule


async def test_missing_rule_answers_404(client, app, world):
    admin = auth(app, world.org.admin)
    assert (await client.get(f"{URL}/999", headers=admin)).status_code == 404
    assert (await client.get(f"{URL}/999/preview", headers=admin)).status_code == 404
    assert (await client.post(f"{URL}/999/run", headers=admin)).status_code == 404


# --- authorization ----------------------------------------------------------------------------


async def test_rep_without_config_manage_is_forbidden_everything(client, app, world):
    admin_rule = await create_rule(client, app, world.org.admin, rule_body(world.key.id))
    rep = auth(app, world.org.rep_a)
    rid = admin_rule["id"]
    calls = [
        client.get(URL, headers=rep),
        client.post(URL, json=rule_body(world.key.id, name="x"), headers=rep),
        client.get(f"{URL}/{rid}", headers=rep),
        client.patch(f"{URL}/{rid}", json={"enabled": False}, headers={**rep, "If-Match": '"1"'}),
        client.delete(f"{URL}/{rid}", headers={**rep, "If-Match": '"1"'}),
        client.post(f"{URL}/preview", json=rule_body(world.key.id), headers=rep),
        client.get(f"{URL}/{rid}/preview", headers=rep),
        client.post(f"{URL}/{rid}/run", headers=rep),
    ]
    for call in calls:
        assert (await call).status_code == 403
    assert await holders(app.state.sessionmaker, world.key) == set(world.ids("d", "e", "g"))


async def config_manager_of_east(maker, world: World) -> Any:
    """A user who manages configuration but reads only the East department (and Hangzhou)."""
    async with maker() as session, session.begin():
        role = await make_role(session, "east config", ["config.manage"], "department_and_children")
        return await make_user(session, "east_config", [role], world.org.east)


async def test_scoped_admin_preview_lists_only_customers_in_scope(client, app, maker, world):
    user = await config_manager_of_east(maker, world)
    r = await client.post(f"{URL}/preview", json=rule_body(world.key.id), headers=auth(app, user))
    assert r.status_code == 200, r.text
    preview = r.json()
    # In scope: a, e (East) and b (Hangzhou); d, f, g belong to South.
    assert [c["id"] for c in preview["add"]] == world.ids("a")
    assert [c["id"] for c in preview["remove"]] == world.ids("e")
    assert (preview["matching"], preview["add_count"], preview["remove_count"]) == (1, 1, 1)


async def test_scoped_admin_run_changes_only_customers_in_scope(client, app, maker, world):
    rule = await create_rule(client, app, world.org.admin, rule_body(world.key.id))
    user = await config_manager_of_east(maker, world)
    r = await client.post(f"{URL}/{rule['id']}/run", headers=auth(app, user))
    assert r.status_code == 200, r.text
    assert (r.json()["added"], r.json()["removed"]) == (1, 1)
    # f (South) matches but was not given the tag; g (South) does not match but keeps it.
    assert await holders(maker, world.key) == set(world.ids("a", "d", "g"))


# --- preview and run --------------------------------------------------------------------------


async def test_preview_of_an_unsaved_rule_on_fields_and_a_custom_field(client, app, world):
    body = rule_body(world.key.id)
    r = await client.post(f"{URL}/preview", json=body, headers=auth(app, world.org.admin))
    assert r.status_code == 200, r.text
    preview = r.json()
    assert preview["matching"] == 3
    assert preview["add"] == [{"id": world.customers[n].id, "name": f"客户{n}"} for n in ("a", "f")]
    assert [c["id"] for c in preview["remove"]] == world.ids("e", "g")
    assert (preview["add_count"], preview["remove_count"]) == (2, 2)
    # A preview changes nothing and saves nothing.
    assert await holders(app.state.sessionmaker, world.key) == set(world.ids("d", "e", "g"))
    assert (await client.get(URL, headers=auth(app, world.org.admin))).json() == []


async def test_add_rule_never_removes_and_remove_rule_never_adds(client, app, world):
    admin = auth(app, world.org.admin)
    for action, added, removed in (("add", ["a", "f"], []), ("remove", [], ["d"])):
        r = await client.post(
            f"{URL}/preview", json=rule_body(world.key.id, action=action), headers=admin
        )
        assert [c["id"] for c in r.json()["add"]] == world.ids(*added)
        assert [c["id"] for c in r.json()["remove"]] == world.ids(*removed)


async def test_operators_in_not_in_null_and_ne(client, app, world):
    admin = auth(app, world.org.admin)
    cases = [
        ([{"field": "level", "op": "in", "value": ["A", "C"]}], ["a", "c", "d", "e"]),
        # Comparisons never match a missing value: f has no level.
        ([{"field": "level", "op": "not_in", "value": ["A"]}], ["b", "e", "g"]),
        ([{"field": "level", "op": "ne", "value": "A"}], ["b", "e", "g"]),
        ([{"field": "level", "op": "is_null"}], ["f"]),
        ([{"field": "custom.budget", "op": "is_null"}], ["c", "g"]),
        ([{"field": "custom.budget", "op": "lt", "value": 100.5}], ["b", "f"]),
        ([{"field": "kind", "op": "eq", "value": "company"}], list("abcdefg")),
    ]
    for conditions, matching in cases:
        body = rule_body(world.key.id, action="add", conditions=conditions)
        r = await client.post(f"{URL}/preview", json=body, headers=admin)
        assert r.status_code == 200, r.text
        holding = {"d", "e", "g"}
        assert r.json()["matching"] == len(matching), conditions
        expected = [n for n in matching if n not in holding]
        assert [c["id"] for c in r.json()["add"]] == world.ids(*expected), conditions


async def test_churn_risk_metric_comes_from_orders(client, app, maker, world):
    c = world.customers
    # a: every 10 days until 90 days ago, overdue by far more than twice its gap → at risk.
    await add_orders(maker, c["a"], [110, 100, 90])
    # b: every 10 days until 5 days ago → fine; c: one order only → no gap, never at risk.
    await add_orders(maker, c["b"], [25, 15, 5])
    await add_orders(maker, c["c"], [200])
    body = rule_body(
        world.key.id,
        action="add",
        conditions=[
            {"field": "churn_risk", "op": "eq", "value": True},
            {"field": "frequency", "op": "gte", "value": 2},
        ],
    )
    r = await client.post(f"{URL}/preview", json=body, headers=auth(app, world.org.admin))
    assert r.status_code == 200, r.text
    assert [x["id"] for x in r.json()["add"]] == world.ids("a")
    assert r.json()["matching"] == 1


async def test_select_and_date_custom_fields_match_by_option_and_date(client, app, maker, org):
    tags = await make_tags(maker, "兴趣", ["线上"])
    await make_custom_field(maker, "channel", "single_select", ["online", "store"])
    await make_custom_field(maker, "topics", "multi_select", ["ai", "erp", "crm"])
    await make_custom_field(maker, "since", "date")
    x = await make_customer(
        maker,
        org.rep_a,
        custom_fields={"channel": "online", "topics": ["ai"], "since": "2025-12-31"},
    )
    y = await make_customer(
        maker,
        org.rep_a,
        custom_fields={"channel": "store", "topics": ["erp", "crm"], "since": "2026-03-01"},
    )
    await make_customer(maker, org.rep_a, custom_fields={})
    admin = auth(app, org.admin)
    cases = [
        ({"field": "custom.channel", "op": "eq", "value": "online"}, [x.id]),
        ({"field": "custom.topics", "op": "eq", "value": "crm"}, [y.id]),
        ({"field": "custom.topics", "op": "in", "value": ["ai", "crm"]}, [x.id, y.id]),
        ({"field": "custom.topics", "op": "not_in", "value": ["ai"]}, [y.id]),
        ({"field": "custom.since", "op": "gte", "value": "2026-01-01"}, [y.id]),
        ({"field": "custom.since", "op": "lt", "value": "2026-01-01"}, [x.id]),
    ]
    for condition, expected in cases:
        body = {"tag_id": tags["线上"].id, "action": "add", "conditions": [condition]}
        r = await client.post(f"{URL}/preview", json=body, headers=admin)
        assert r.status_code == 200, r.text
        assert [c["id"] for c in r.json()["add"]] == expected, condition


async def test_run_applies_exactly_the_preview_and_a_second_run_changes_nothing(
    client, app, maker, world
):
    admin = auth(app, world.org.admin)
    rule = await create_rule(client, app, world.org.admin, rule_body(world.key.id))
    url = f"{URL}/{rule['id']}"
    preview = (await client.get(f"{url}/preview", headers=admin)).json()
    before = await holders(maker, world.key)

    r = await client.post(f"{url}/run", headers=admin)
    assert r.status_code == 200, r.text
    result = r.json()
    assert (result["added"], result["removed"]) == (preview["add_count"], preview["remove_count"])
    after = await holders(maker, world.key)
    assert after == (before | {c["id"] for c in preview["add"]}) - {
        c["id"] for c in preview["remove"]
    }
    assert after == set(world.ids("a", "d", "f"))

    again = (await client.post(f"{url}/run", headers=admin)).json()
    assert (again["added"], again["removed"], again["replaced"]) == (0, 0, 0)
    quiet = (await client.get(f"{url}/preview", headers=admin)).json()
    assert (quiet["add_count"], quiet["remove_count"], quiet["matching"]) == (0, 0, 3)


async def test_run_records_counters_without_changing_the_etag(client, app, maker, world):
    admin = auth(app, world.org.admin)
    rule = await create_rule(client, app, world.org.admin, rule_body(world.key.id))
    await client.post(f"{URL}/{rule['id']}/run", headers=admin)
    r = await client.get(f"{URL}/{rule['id']}", headers=admin)
    assert r.headers["ETag"] == '"1"'
    saved = r.json()
    assert (saved["last_added"], saved["last_removed"]) == (2, 2)
    assert saved["last_run_at"] is not None
    assert saved["updated_at"] == rule["updated_at"]
    async with maker() as session:
        events = (
            await session.scalars(select(AuditEvent).where(AuditEvent.entity == "tag_rule"))
        ).all()
    assert [(e.entity_id, e.action, e.actor_id) for e in events] == [
        (rule["id"], "tag_rule_run", world.org.admin.id)
    ]
    assert events[0].changes["added"]["after"] == 2


async def test_removed_tags_keep_their_history_rows(client, app, maker, world):
    admin = auth(app, world.org.admin)
    rule = await create_rule(client, app, world.org.admin, rule_body(world.key.id))
    await client.post(f"{URL}/{rule['id']}/run", headers=admin)
    rows = {r.customer_id: r for r in await tag_rows(maker, world.key)}
    assert len(await tag_rows(maker, world.key)) == 5  # d, e, g from before; a, f new
    e = rows[world.customers["e"].id]
    assert e.removed_at is not None and e.removed_by_id == world.org.admin.id
    a = rows[world.customers["a"].id]
    assert a.removed_at is None and a.added_by_id == world.org.admin.id


async def test_giving_an_exclusive_groups_tag_ends_the_customers_other_tag(client, app, maker, org):
    tags = await make_tags(maker, "价值等级", ["高", "低"], exclusive=True)
    rich = await make_customer(maker, org.rep_a, "富客户", level="A")
    poor = await make_customer(maker, org.rep_a, "小客户", level="C")
    for customer in (rich, poor):
        await give_tag(maker, customer, tags["低"])
    body = rule_body(
        tags["高"].id,
        action="add",
        conditions=[{"field": "level", "op": "eq", "value": "A"}],
    )
    rule = await create_rule(client, app, org.admin, body)
    r = await client.post(f"{URL}/{rule['id']}/run", headers=auth(app, org.admin))
    assert r.json()["replaced"] == 1 and r.json()["added"] == 1
    assert await holders(maker, tags["高"]) == {rich.id}
    assert await holders(maker, tags["低"]) == {poor.id}
    ended = [row for row in await tag_rows(maker, tags["低"]) if row.customer_id == rich.id]
    assert len(ended) == 1 and ended[0].removed_at is not None
