"""The demo-data generator (SPEC L5): organisation, customers, determinism, persona signal.

Most tests work on databases of their own (seeding needs an empty one): a temp SQLite file, or a
scratch database next to ``KEHU_TEST_DATABASE_URL`` when that points at PostgreSQL. One database
of 2,000 customers is seeded once for the module; the determinism tests use 200.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
import tempfile
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.access import PERMISSIONS
from app.config import PROJECT_ROOT
from app.db import create_engine, create_sessionmaker
from app.models import (
    AuditEvent,
    Contact,
    Customer,
    CustomerPhone,
    CustomerTag,
    CustomFieldDefinition,
    Department,
    Order,
    OrderLine,
    Role,
    Tag,
    TagGroup,
    User,
    user_roles,
)
from app.models.base import utcnow
from app.security import verify_password
from app.services import config as config_service
from app.services import pools
from app.services.customers import haversine_km
from app.services.demo import (
    _CITIES,
    DEMO_LOGINS,
    DEMO_PASSWORD,
    DemoSummary,
    _generate,
    ensure_default_roles,
    seed_demo,
)
from app.services.normalize import normalize_email, normalize_name, normalize_phone

N = 2000
SMALL = 200
NOW = dt.datetime(2026, 6, 15, 8, 30, tzinfo=dt.UTC)


@asynccontextmanager
async def fresh_database() -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """An empty database migrated by Alembic, dropped afterwards."""
    base = os.environ.get("KEHU_TEST_DATABASE_URL")
    scratch: str | None = None
    with tempfile.TemporaryDirectory() as tmp:
        if base and make_url(base).get_backend_name() == "postgresql":
            scratch = f"kehu_demo_{uuid.uuid4().hex[:12]}"
            await _admin(base, f'CREATE DATABASE "{scratch}"')
            url = make_url(base).set(database=scratch).render_as_string(hide_password=False)
        else:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'demo.db'}"
        cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
        cfg.attributes["database_url"] = url
        cfg.attributes["configure_logging"] = False
        await asyncio.to_thread(command.upgrade, cfg, "head")
        engine = create_engine(url)
        try:
            yield create_sessionmaker(engine)
        finally:
            await engine.dispose()
            if base and scratch:
                await _admin(base, f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')


async def _admin(url: str, statement: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
async def seeded() -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], DemoSummary]]:
    async with fresh_database() as maker:
        summary = await seed_demo(maker, seed=2026, customers=N)
        yield maker, summary


async def _scalar(maker: async_sessionmaker[AsyncSession], stmt: Any) -> Any:
    async with maker() as session:
        return await session.scalar(stmt)


async def _rows(maker: async_sessionmaker[AsyncSession], stmt: Any) -> list[Any]:
    async with maker() as session:
        return list((await session.execute(stmt)).all())


async def _user_ids(maker: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    return {u: i for u, i in await _rows(maker, select(User.username, User.id))}


# --- the organisation --------------------------------------------------------------------------


async def test_seed_creates_users_departments_and_roles(seeded):
    maker, summary = seeded
    assert summary.seeded is True
    assert summary.customers == N
    usernames = ["admin", "mgr1", "mgr2", "mgr3"] + [f"rep{i}" for i in range(1, 9)]
    assert [login[0] for login in summary.logins] == usernames
    assert summary.logins == list(DEMO_LOGINS)

    roles = {
        name: (perms, scopes, system)
        for name, perms, scopes, system in await _rows(
            maker, select(Role.name, Role.permissions, Role.scopes, Role.is_system)
        )
    }
    assert set(roles) == {"admin", "manager", "sales_rep"}
    assert set(roles["admin"][0]) == set(PERMISSIONS)
    assert roles["admin"][1] == {"customer": "all"}
    assert set(roles["manager"][0]) == {
        "customer.create",
        "customer.update",
        "customer.delete",
        "target.manage",
    }
    assert roles["manager"][1] == {"customer": "department_and_children"}
    assert set(roles["sales_rep"][0]) == {"customer.create", "customer.update"}
    assert roles["sales_rep"][1] == {"customer": "own"}
    assert all(system for _p, _s, system in roles.values())

    role_of = dict(
        await _rows(
            maker,
            select(User.username, Role.name)
            .join(user_roles, user_roles.c.user_id == User.id)
            .join(Role, Role.id == user_roles.c.role_id),
        )
    )
    assert role_of == {u: r for u, _display, r in summary.logins}

    departments = {
        d.name: d for (d,) in await _rows(maker, select(Department).order_by(Department.id))
    }
    assert set(departments) == {"华东销售部", "杭州分部", "华南销售部"}
    east, hangzhou, south = (
        departments["华东销售部"],
        departments["杭州分部"],
        departments["华南销售部"],
    )
    assert east.parent_id is None and east.path == f"/{east.id}/"
    assert hangzhou.parent_id == east.id and hangzhou.path == f"/{east.id}/{hangzhou.id}/"
    assert south.parent_id is None and south.path == f"/{south.id}/"

    ids = await _user_ids(maker)
    assert (east.manager_id, hangzhou.manager_id, south.manager_id) == (
        ids["mgr1"],
        ids["mgr2"],
        ids["mgr3"],
    )
    dept_of = dict(await _rows(maker, select(User.username, User.department_id)))
    assert dept_of["admin"] is None
    assert {u for u, d in dept_of.items() if d == east.id} == {"mgr1", "rep1", "rep2", "rep3"}
    assert {u for u, d in dept_of.items() if d == hangzhou.id} == {"mgr2", "rep4", "rep5"}
    assert {u for u, d in dept_of.items() if d == south.id} == {"mgr3", "rep6", "rep7", "rep8"}


async def test_every_demo_user_logs_in_with_the_demo_password(seeded):
    maker, _summary = seeded
    hashes = dict(await _rows(maker, select(User.username, User.password_hash)))
    assert len(set(hashes.values())) == 1  # hashed once, shared
    assert await verify_password(DEMO_PASSWORD, hashes["rep1"])
    assert not await verify_password("wrong-password", hashes["rep1"])


async def test_ensure_default_roles_is_idempotent(seeded):
    maker, _summary = seeded
    before = dict(await _rows(maker, select(Role.name, Role.id)))
    async with maker() as session, session.begin():
        roles = await ensure_default_roles(session)
    assert {name: role.id for name, role in roles.items()} == before
    assert await _scalar(maker, select(func.count()).select_from(Role)) == 3


async def test_seed_creates_tag_groups_and_custom_fields(seeded):
    maker, _summary = seeded
    groups = dict(await _rows(maker, select(TagGroup.name, TagGroup.exclusive)))
    assert groups == {"购买需求": True, "企业特征": False, "年龄段": True, "兴趣偏好": False}
    tags = {
        (g, t)
        for g, t in await _rows(
            maker, select(TagGroup.name, Tag.name).join(Tag, Tag.group_id == TagGroup.id)
        )
    }
    assert {("购买需求", "高意向"), ("年龄段", "60+"), ("兴趣偏好", "价格敏感")} <= tags
    fields = {
        key: (kind, options)
        for key, kind, options in await _rows(
            maker,
            select(
                CustomFieldDefinition.key, CustomFieldDefinition.type, CustomFieldDefinition.options
            ).where(CustomFieldDefinition.entity == "customer"),
        )
    }
    assert fields == {
        "budget": ("number", []),
        "channels": ("multi_select", ["线上", "门店", "经销商", "电话"]),
        "contract_due": ("date", []),
        "company_size": ("single_select", ["1-20人", "21-100人", "101-500人", "500人以上"]),
        "wechat_group": ("text", []),
    }


# --- idempotence -------------------------------------------------------------------------------


async def test_second_seed_does_nothing(seeded):
    maker, _summary = seeded
    counts = [
        await _scalar(maker, select(func.count()).select_from(model))
        for model in (User, Customer, Contact, CustomerTag, AuditEvent)
    ]
    again = await seed_demo(maker, seed=7, customers=50)
    assert again == DemoSummary(logins=[], customers=0, seeded=False)
    assert [
        await _scalar(maker, select(func.count()).select_from(model))
        for model in (User, Customer, Contact, CustomerTag, AuditEvent)
    ] == counts


# --- customers ---------------------------------------------------------------------------------


async def test_customers_have_the_expected_mix(seeded):
    maker, _summary = seeded
    customers = [c for (c,) in await _rows(maker, select(Customer))]
    assert len(customers) == N
    assert len({c.name for c in customers}) == N
    assert len({c.name_normalized for c in customers}) == N
    kinds = Counter(c.kind for c in customers)
    assert 0.74 * N <= kinds["company"] <= 0.86 * N
    levels = Counter(c.level for c in customers)
    assert 0.10 * N <= levels["A"] <= 0.22 * N
    assert 0.28 * N <= levels["B"] <= 0.42 * N
    assert 0.42 * N <= levels["C"] <= 0.58 * N
    assert len({c.industry for c in customers}) == 10
    assert len({c.source for c in customers}) == 7
    assert len({c.city for c in customers}) >= 20
    for c in customers:
        assert c.name_normalized == normalize_name(c.name)
        assert c.email_normalized == normalize_email(c.email)
        assert c.deleted_at is None
        if c.kind == "person":
            assert c.gender in ("male", "female") and c.birth_date is not None
        else:
            assert c.gender is None and c.name.endswith("公司")
    assert sum(c.email is not None for c in customers) > 0.3 * N
    assert sum(bool(c.custom_fields) for c in customers) > 0.8 * N


async def test_custom_field_values_pass_validation(seeded):
    maker, _summary = seeded
    async with maker() as session:
        definitions = await config_service.custom_field_map(session)
        values = (await session.scalars(select(Customer.custom_fields))).all()
    for value in values:
        assert config_service.validate_custom_values(definitions, value) == value


async def test_rep1_owns_a_few_hundred_and_some_are_in_the_pool(seeded):
    maker, _summary = seeded
    ids = await _user_ids(maker)
    owners = Counter(owner for (owner,) in await _rows(maker, select(Customer.owner_id)))
    assert 0.09 * N <= owners[ids["rep1"]] <= 0.15 * N  # ~12 %: a few hundred of 2,000
    assert 0.02 * N <= owners[None] <= 0.08 * N  # the pool
    for username in ["mgr1", "mgr2", "mgr3"] + [f"rep{i}" for i in range(1, 9)]:
        assert owners[ids[username]] > 0.04 * N
    assert owners[ids["admin"]] == 0
    rows = await _rows(
        maker, select(Customer.owner_id, Customer.owner_assigned_at, Customer.created_at)
    )
    now = dt.datetime.now(dt.UTC)
    for owner, assigned, created in rows:
        if owner is None:
            assert assigned is None
        else:  # received at creation, or later (claimed, or settled by the pool clocks)
            assert assigned is not None and created <= assigned <= now


async def test_demo_pools_hold_the_unowned_and_reclaim_nothing_at_first(seeded):
    maker, _summary = seeded
    pooled = Counter(
        pool
        for (pool,) in await _rows(
            maker, select(Customer.pool_id).where(Customer.owner_id.is_(None))
        )
    )
    assert None not in pooled and len(pooled) == 2 and sum(pooled.values()) > 0.02 * N
    assert await pools.reclaim_neglected_customers(maker) == 0
    async with maker() as session:
        upcoming = await pools.upcoming_reclaims(session, dt.datetime.now(dt.UTC))
    ids = await _user_ids(maker)
    assert sum(1 for u in upcoming if u.owner_id == ids["rep1"]) >= 3


async def test_dates_are_relative_to_now_and_in_order(seeded):
    maker, _summary = seeded
    now = dt.datetime.now(dt.UTC)
    customers = [c for (c,) in await _rows(maker, select(Customer))]
    for c in customers:
        assert now - dt.timedelta(days=560) <= c.created_at <= now
        assert c.created_at.tzinfo is not None
        if c.deal_status == "signed":
            assert c.signed_at is not None and c.created_at <= c.signed_at <= now
        else:
            assert c.signed_at is None
        if c.last_follow_up_at is not None:
            assert c.created_at <= c.last_follow_up_at <= now
            assert c.last_follow_up_at >= now - dt.timedelta(days=91)
        if c.next_follow_up_at is not None:
            assert now - dt.timedelta(minutes=5) <= c.next_follow_up_at
            assert c.next_follow_up_at <= now + dt.timedelta(days=14, minutes=5)
    assert sum(c.last_follow_up_at is not None for c in customers) > 0.75 * N
    assert 0.1 * N < sum(c.next_follow_up_at is not None for c in customers) < 0.5 * N


async def test_locations_lie_near_their_city_centre(seeded):
    maker, _summary = seeded
    centres = {(p, c): (lat, lng) for p, c, _py, lat, lng, _w, _d in _CITIES}
    rows = await _rows(maker, select(Customer.province, Customer.city, Customer.lat, Customer.lng))
    for province, city, lat, lng in rows:
        assert haversine_km(centres[(province, city)], (lat, lng)) <= 15.5


async def test_every_phone_has_an_index_row(seeded):
    maker, _summary = seeded
    indexed: dict[tuple[int, int | None], list[str]] = defaultdict(list)
    for customer_id, contact_id, number in await _rows(
        maker, select(CustomerPhone.customer_id, CustomerPhone.contact_id, CustomerPhone.number)
    ):
        indexed[(customer_id, contact_id)].append(number)
    all_numbers: list[str] = []
    for cid, phones in await _rows(maker, select(Customer.id, Customer.phones)):
        assert sorted(indexed.pop((cid, None), [])) == sorted(phones)
        all_numbers += phones
    contacts = await _rows(maker, select(Contact.customer_id, Contact.id, Contact.phones))
    for cid, contact_id, phones in contacts:
        assert phones
        assert sorted(indexed.pop((cid, contact_id), [])) == sorted(phones)
        all_numbers += phones
    assert not indexed  # no index rows without their phone
    for number in all_numbers:
        assert normalize_phone(number) == number
        assert len(number) == 11 and number[:2] in ("13", "15", "17", "18", "19")
    assert len(set(all_numbers)) == len(all_numbers)


async def test_contacts_belong_to_companies_with_one_primary(seeded):
    maker, _summary = seeded
    kind = dict(await _rows(maker, select(Customer.id, Customer.kind)))
    per_customer: dict[int, list[bool]] = defaultdict(list)
    for cid, primary in await _rows(maker, select(Contact.customer_id, Contact.is_primary)):
        per_customer[cid].append(primary)
    assert len(per_customer) > 0.6 * N * 0.8
    for cid, flags in per_customer.items():
        assert kind[cid] == "company"
        assert 1 <= len(flags) <= 3
        assert flags.count(True) == 1


async def test_exclusive_groups_hold_at_most_one_active_tag(seeded):
    maker, _summary = seeded
    rows = await _rows(
        maker,
        select(CustomerTag.customer_id, TagGroup.name, TagGroup.exclusive, CustomerTag.removed_at)
        .join(Tag, Tag.id == CustomerTag.tag_id)
        .join(TagGroup, TagGroup.id == Tag.group_id),
    )
    active = Counter((cid, group) for cid, group, exclusive, removed in rows if removed is None)
    exclusive = {group for _c, group, is_exclusive, _r in rows if is_exclusive}
    assert exclusive == {"购买需求", "年龄段"}
    assert all(n == 1 for (_cid, group), n in active.items() if group in exclusive)
    removed = sum(1 for *_rest, r in rows if r is not None)
    assert removed > 0.05 * N  # tag history exists
    spans = await _rows(
        maker,
        select(CustomerTag.added_at, CustomerTag.removed_at, Customer.created_at).join(
            Customer, Customer.id == CustomerTag.customer_id
        ),
    )
    for added, removed_at, created in spans:
        assert created <= added
        assert removed_at is None or added < removed_at


async def test_persons_carry_their_age_band(seeded):
    maker, _summary = seeded
    today = dt.datetime.now(dt.UTC).date()
    bands = dict(
        await _rows(
            maker,
            select(CustomerTag.customer_id, Tag.name)
            .join(Tag, Tag.id == CustomerTag.tag_id)
            .join(TagGroup, TagGroup.id == Tag.group_id)
            .where(TagGroup.name == "年龄段", CustomerTag.removed_at.is_(None)),
        )
    )
    persons = await _rows(
        maker, select(Customer.id, Customer.birth_date).where(Customer.kind == "person")
    )
    assert persons and set(bands) == {cid for cid, _b in persons}
    for cid, birth in persons:
        age = today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
        low, _, high = bands[cid].partition("-")
        assert age >= 61 if bands[cid] == "60+" else int(low) <= age <= int(high)


async def test_signing_carries_the_persona_signal(seeded):
    maker, _summary = seeded
    rows = await _rows(maker, select(Customer.id, Customer.source, Customer.deal_status))
    signed = {cid for cid, _s, status in rows if status == "signed"}
    assert 0.15 * N <= len(signed) <= 0.25 * N

    def rate(ids: set[int]) -> float:
        return len(ids & signed) / len(ids)

    by_source: dict[str, set[int]] = defaultdict(set)
    for cid, source, _status in rows:
        by_source[source].add(cid)
    overall = len(signed) / N
    assert rate(by_source["老客户推荐"]) > 1.6 * overall
    assert rate(by_source["地推"]) < 0.6 * overall
    high_intent = {
        cid
        for (cid,) in await _rows(
            maker,
            select(CustomerTag.customer_id)
            .join(Tag, Tag.id == CustomerTag.tag_id)
            .where(Tag.name == "高意向", CustomerTag.removed_at.is_(None)),
        )
    }
    assert rate(high_intent) > 1.6 * overall


async def test_audit_trail_starts_with_created(seeded):
    maker, _summary = seeded
    created = await _rows(
        maker,
        select(AuditEvent.customer_id, AuditEvent.entity_id, AuditEvent.at, Customer.created_at)
        .join(Customer, Customer.id == AuditEvent.customer_id)
        .where(AuditEvent.action == "created"),
    )
    assert len(created) == N
    assert len({cid for cid, *_ in created}) == N
    for cid, entity_id, at, customer_created in created:
        assert cid == entity_id and at == customer_created
    # Within a customer, event ids follow time (the timeline is read by id).
    events = await _rows(
        maker, select(AuditEvent.customer_id, AuditEvent.at).order_by(AuditEvent.id)
    )
    last: dict[int, dt.datetime] = {}
    for cid, at in events:
        assert at >= last.get(cid, at)
        last[cid] = at


# --- determinism -------------------------------------------------------------------------------

_COMPARED = (
    (Customer, Customer.id),
    (Contact, Contact.id),
    (CustomerPhone, CustomerPhone.id),
    (CustomerTag, CustomerTag.id),
    (AuditEvent, AuditEvent.id),
)


async def _snapshot(maker: async_sessionmaker[AsyncSession]) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with maker() as session:
        for model, order in _COMPARED:
            rows = await session.execute(select(model.__table__).order_by(order))
            out[model.__tablename__] = [tuple(r) for r in rows]
        users = await session.execute(
            select(User.username, User.display_name, User.phone, User.department_id).order_by(
                User.id
            )
        )
        out["users"] = [tuple(r) for r in users]
    return out


async def test_same_seed_gives_identical_data():
    async with fresh_database() as first, fresh_database() as second:
        await seed_demo(first, seed=42, customers=SMALL, now=NOW)
        await seed_demo(second, seed=42, customers=SMALL, now=NOW)
        a, b = await _snapshot(first), await _snapshot(second)
    assert len(a["customers"]) == SMALL
    for table in a:
        assert a[table] == b[table], table


async def test_names_and_phones_do_not_depend_on_the_clock():
    later = NOW + dt.timedelta(days=3, hours=5, seconds=17)
    async with fresh_database() as first, fresh_database() as second:
        await seed_demo(first, seed=42, customers=SMALL, now=NOW)
        await seed_demo(second, seed=42, customers=SMALL, now=later)
        query = select(Customer.name, Customer.phones, Customer.email, Customer.city).order_by(
            Customer.id
        )
        contacts = select(Contact.customer_id, Contact.name, Contact.phones).order_by(Contact.id)
        assert await _rows(first, query) == await _rows(second, query)
        assert await _rows(first, contacts) == await _rows(second, contacts)
        created = await _rows(first, select(Customer.created_at).order_by(Customer.id))
        shifted = await _rows(second, select(Customer.created_at).order_by(Customer.id))
    # Dates are relative to "now": they move with it.
    assert created != shifted


def test_another_seed_gives_other_customers():
    _phones_a, a = _generate(1, NOW, SMALL)
    _phones_b, b = _generate(2, NOW, SMALL)
    assert len({p.name for p in a} & {p.name for p in b}) < SMALL // 10


# --- through the API (the shared test database of tests/conftest.py) ---------------------------


async def _login(client: Any, username: str) -> dict[str, str]:
    response = await client.post(
        "/api/v1/auth/token", data={"username": username, "password": DEMO_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def _list_all(client: Any, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": 200, **params, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/v1/customers", params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


async def test_demo_logins_see_their_data_scope_through_the_api(app, client, maker):
    summary = await seed_demo(maker, seed=5, customers=SMALL)
    assert summary.seeded
    ids = await _user_ids(maker)
    owners = Counter(owner for (owner,) in await _rows(maker, select(Customer.owner_id)))

    mine = await _list_all(client, await _login(client, "rep1"))
    assert len(mine) == owners[ids["rep1"]] > 0
    assert {c["owner"]["id"] for c in mine} == {ids["rep1"]}

    # mgr2 manages 杭州分部: its own customers and those of rep4 and rep5.
    team = await _list_all(client, await _login(client, "mgr2"))
    expected = {ids["mgr2"], ids["rep4"], ids["rep5"]}
    assert len(team) == sum(owners[i] for i in expected)
    assert {c["owner"]["id"] for c in team} == expected

    admin = await _login(client, "admin")
    # The customer list holds owned customers; pool customers are browsed per pool.
    assert len(await _list_all(client, admin)) == SMALL - owners[None]
    # "Nearby" finds customers around 杭州 (the demo jitters them within 15 km of the centre).
    near = await _list_all(client, admin, near="30.2741,120.1551", radius_km=16)
    in_hangzhou = await _scalar(
        maker,
        select(func.count())
        .select_from(Customer)
        .where(Customer.city == "杭州市", Customer.pool_id.is_(None)),
    )
    assert len(near) == in_hangzhou > 0


async def test_deals_have_history_contracts_and_orders_that_agree(seeded):
    from app.models import Contract, Opportunity, OpportunityHistory, Pipeline

    maker, _ = seeded
    assert (
        await _scalar(
            maker, select(func.count()).select_from(Pipeline).where(Pipeline.is_default.is_(True))
        )
        == 1
    )
    opportunities = await _rows(
        maker,
        select(Opportunity.id, Opportunity.status, Opportunity.stage_id, Opportunity.created_at),
    )
    assert {s for _, s, _, _ in opportunities} >= {"open", "won", "lost"}
    history = await _rows(
        maker,
        select(
            OpportunityHistory.opportunity_id,
            OpportunityHistory.stage_id,
            OpportunityHistory.valid_from,
            OpportunityHistory.valid_to,
        ).order_by(OpportunityHistory.opportunity_id, OpportunityHistory.valid_from),
    )
    chains: dict[int, list[Any]] = {}
    for row in history:
        chains.setdefault(row[0], []).append(row)
    for opp_id, _status, stage_id, created in opportunities:
        chain = chains[opp_id]
        assert chain[0][2] == created and chain[-1][3] is None and chain[-1][1] == stage_id
        assert all(a[3] == b[2] for a, b in itertools.pairwise(chain))  # no gaps, no overlaps
    statuses = {s for (s,) in await _rows(maker, select(Contract.status))}
    assert statuses >= {"draft", "pending_approval", "signed", "active", "completed", "void"}
    signed = await _scalar(
        maker, select(func.count()).select_from(Contract).where(Contract.signed_at.is_not(None))
    )
    contract_orders = select(func.count()).select_from(Order).where(Order.source == "contract")
    assert await _scalar(maker, contract_orders) == signed


async def test_repeat_orders_follow_signing_and_add_up(seeded):
    maker, _summary = seeded
    orders = await _rows(
        maker,
        select(Order.id, Order.ordered_at, Order.amount_cents, Order.channel, Customer.signed_at)
        .join(Customer, Customer.id == Order.customer_id)
        .where(Order.source == "api"),
    )
    assert len(orders) > N // 10
    assert all(signed is not None and placed >= signed + dt.timedelta(days=7) for
               _i, placed, _a, _c, signed in orders)  # fmt: skip
    assert all(placed <= utcnow() for _i, placed, *_rest in orders)
    assert {channel for *_rest, channel, _s in orders} == {"直销", "线上商城", "代理商"}
    totals = dict(
        await _rows(
            maker,
            select(
                OrderLine.order_id, func.sum(OrderLine.quantity * OrderLine.unit_price_cents)
            ).group_by(OrderLine.order_id),
        )
    )
    assert all(totals[order_id] == amount for order_id, _p, amount, *_rest in orders)
    # Some customers buy again and again (retention, RFM), some bundles recur (basket).
    per_customer = await _rows(
        maker,
        select(Order.customer_id, func.count())
        .where(Order.source == "api")
        .group_by(Order.customer_id),
    )
    assert max(n for _c, n in per_customer) >= 5


async def test_young_leads_sign_less_and_the_early_twenties_more(seeded):
    """The seed's persona example: leads skew 18–20, signed customers 20–25."""
    maker, _summary = seeded
    rows = await _rows(
        maker,
        select(Customer.birth_date, Customer.created_at, Customer.deal_status).where(
            Customer.birth_date.is_not(None)
        ),
    )
    overall = sum(1 for *_r, status in rows if status == "signed") / len(rows)

    def rate(low: int, high: int) -> float:
        group = [status for birth, created, status in rows
                 if low <= (created.date() - birth).days // 365.25 <= high]  # fmt: skip
        return sum(1 for s in group if s == "signed") / len(group)

    assert rate(18, 20) < 0.5 * overall
    assert rate(21, 25) > 1.5 * overall
