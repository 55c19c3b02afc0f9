"""The scheduler job that re-applies enabled auto-tag rules (SPEC H10)."""

from __future__ import annotations

from sqlalchemy import delete

from app.jobs.tag_rules import evaluate_tag_rules
from app.models import CustomFieldDefinition, TagRule
from tests.factories import make_customer
from tests.tag_rules.conftest import give_tag, holders, make_custom_field, make_tags, tag_rows


async def add_rule(maker, name: str, tag_id: int, action: str, conditions, enabled=True) -> int:
    async with maker() as session, session.begin():
        rule = TagRule(
            name=name,
            tag_id=tag_id,
            action=action,
            conditions=conditions,
            enabled=enabled,
            last_added=0,
            last_removed=0,
        )
        session.add(rule)
        await session.flush()
        return rule.id


async def test_job_runs_every_enabled_rule_over_all_customers(app, maker, settings, org):
    tags = await make_tags(maker, "自动", ["制造业", "华东", "停用规则"])
    factory = await make_customer(maker, org.rep_a, industry="制造", province="浙江")
    shop = await make_customer(maker, org.rep_d, industry="零售", province="广东")
    await give_tag(maker, shop, tags["华东"])
    eq = "eq"
    manufacturing = await add_rule(
        maker, "制造", tags["制造业"].id, "add", [{"field": "industry", "op": eq, "value": "制造"}]
    )
    east = await add_rule(
        maker, "华东", tags["华东"].id, "sync", [{"field": "province", "op": eq, "value": "浙江"}]
    )
    disabled = await add_rule(
        maker,
        "停用",
        tags["停用规则"].id,
        "add",
        [{"field": "kind", "op": eq, "value": "company"}],
        enabled=False,
    )

    await evaluate_tag_rules(maker, settings, app.state.analytics)

    assert await holders(maker, tags["制造业"]) == {factory.id}
    assert await holders(maker, tags["华东"]) == {factory.id}
    assert await holders(maker, tags["停用规则"]) == set()
    # The scheduler acts as nobody.
    new = [r for r in await tag_rows(maker, tags["华东"]) if r.customer_id == factory.id]
    assert new[0].added_by_id is None
    ended = [r for r in await tag_rows(maker, tags["华东"]) if r.customer_id == shop.id]
    assert ended[0].removed_at is not None and ended[0].removed_by_id is None
    async with maker() as session:
        runs = {r: await session.get(TagRule, r) for r in (manufacturing, east, disabled)}
    assert (runs[manufacturing].last_added, runs[manufacturing].last_removed) == (1, 0)
    assert (runs[east].last_added, runs[east].last_removed) == (1, 1)
    assert runs[east].last_run_at is not None
    assert runs[disabled].last_run_at is None

    # A second pass finds nothing left to do.
    await evaluate_tag_rules(maker, settings, app.state.analytics)
    async with maker() as session:
        again = await session.get(TagRule, east)
    assert (again.last_added, again.last_removed) == (0, 0)


async def test_job_skips_a_rule_that_no_longer_compiles_and_runs_the_others(
    app, maker, settings, org
):
    tags = await make_tags(maker, "自动", ["大预算", "制造业"])
    await make_custom_field(maker, "budget", "number")
    factory = await make_customer(maker, org.rep_a, industry="制造", custom_fields={"budget": 9})
    broken = await add_rule(
        maker,
        "预算",
        tags["大预算"].id,
        "add",
        [{"field": "custom.budget", "op": "gt", "value": 1}],
    )
    fine = await add_rule(
        maker,
        "制造",
        tags["制造业"].id,
        "add",
        [{"field": "industry", "op": "eq", "value": "制造"}],
    )
    # The custom field is removed after the rule was saved.
    async with maker() as session, session.begin():
        await session.execute(delete(CustomFieldDefinition))

    await evaluate_tag_rules(maker, settings, app.state.analytics)

    assert await holders(maker, tags["制造业"]) == {factory.id}
    assert await holders(maker, tags["大预算"]) == set()
    async with maker() as session:
        assert (await session.get(TagRule, broken)).last_run_at is None
        assert (await session.get(TagRule, fine)).last_run_at is not None
