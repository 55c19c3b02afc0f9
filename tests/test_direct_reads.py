"""Direct reads (ADR 0014): the customer detail is served without FastAPI's dependency solving,
its statements run on the driver on PostgreSQL — and it answers, authorizes, documents and
fails exactly as an endpoint with dependencies does."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import DBAPIError

from app import deps
from app.access import STAMP, STAMP_COLUMN, CheckedReads, StaleAccess
from app.models import AccessStamp, Customer, CustomerTag, Tag, TagGroup, User
from app.reads import Reads, Record, prepared
from app.routers import customers
from app.routers.common import DirectRoute
from app.services.customers import read_customer
from tests.factories import (
    auth,
    backends_in_a_transaction,
    count_statements,
    make_customer,
    make_org,
)
from tests.integrations.test_rate_limits import LIMITS, NOON, limited_app

DETAIL = "/api/v1/customers/{}"


def postgresql_only(app) -> None:
    if app.state.engine.dialect.name != "postgresql":
        pytest.skip("the driver path is asyncpg's")


async def test_the_detail_is_a_direct_route_guarded_as_its_router(app):
    direct = [r for r in customers.router.routes if isinstance(r, DirectRoute)]
    assert [(r.path, sorted(r.methods)) for r in direct] == [
        ("/customers/{customer_id:int}", ["GET"])
    ]
    assert direct[0].guarded and direct[0].resource == "customers"


async def test_no_dependency_is_solved_for_it(app, client, maker):
    org = await make_org(maker)
    customer = await make_customer(maker, org.rep_a)

    async def no_session():
        raise AssertionError("a direct route solved a dependency")
        yield  # pragma: no cover

    app.dependency_overrides[deps.get_session] = no_session
    try:
        answer = await client.get(DETAIL.format(customer.id), headers=auth(app, org.rep_a))
        assert answer.status_code == 200, answer.text
        assert answer.json()["id"] == customer.id
        assert answer.headers["ETag"] == f'"{customer.version}"'
        # An endpoint with dependencies does solve them: the override is in force.
        with pytest.raises(AssertionError, match="solved a dependency"):
            await client.get("/api/v1/customers", headers=auth(app, org.rep_a))
    finally:
        app.dependency_overrides.pop(deps.get_session)


async def test_the_openapi_document_describes_it_as_before(app, client):
    operation = (await client.get("/api/v1/openapi.json")).json()["paths"][
        "/api/v1/customers/{customer_id}"
    ]["get"]
    assert operation["operationId"] == "get_customer"
    assert [(p["name"], p["in"], p["schema"]["type"]) for p in operation["parameters"]] == [
        ("customer_id", "path", "integer")
    ]
    ok = operation["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CustomerOut"
    }
    assert "ETag" in ok["headers"]
    assert "404" in operation["responses"]
    assert operation["security"] == [{"OAuth2PasswordBearer": []}]
    assert operation["x-api-key-scope"] == "customers:read"


async def test_who_may_read_it(app, client, maker):
    org = await make_org(maker)
    mine = await make_customer(maker, org.rep_a)
    theirs = await make_customer(maker, org.rep_b)
    missing = await client.get(DETAIL.format(mine.id))
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    forged = await client.get(DETAIL.format(mine.id), headers={"Authorization": "Bearer x.y.z"})
    assert forged.status_code == 401
    assert (await client.get(DETAIL.format(mine.id), headers=auth(app, org.rep_a))).is_success
    outside = await client.get(DETAIL.format(theirs.id), headers=auth(app, org.rep_a))
    assert outside.status_code == 404
    assert outside.json()["type"].endswith("/not-found")
    assert (await client.get(DETAIL.format(theirs.id), headers=auth(app, org.mgr_east))).is_success


async def test_api_keys_need_the_customers_scope(app, client, maker):
    org = await make_org(maker)
    customer = await make_customer(maker, org.admin)
    tokens = {}
    for scopes in (["orders:read"], ["customers:read"]):
        made = await client.post(
            "/api/v1/api-keys",
            json={"name": "ERP", "scopes": scopes},
            headers=auth(app, org.admin),
        )
        assert made.status_code == 201, made.text
        tokens[scopes[0]] = made.json()["token"]
    refused = await client.get(
        DETAIL.format(customer.id), headers={"Authorization": f"Bearer {tokens['orders:read']}"}
    )
    assert refused.status_code == 403
    allowed = await client.get(
        DETAIL.format(customer.id),
        headers={"Authorization": f"Bearer {tokens['customers:read']}"},
    )
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["id"] == customer.id


async def test_the_rate_limit_counts_it(app, settings, maker, monkeypatch):
    monkeypatch.setattr(deps, "utcnow", lambda: NOON)
    org = await make_org(maker)
    customer = await make_customer(maker, org.rep_a)
    async with limited_app(settings) as (limited, client):
        headers = auth(limited, org.rep_a)
        answers = [await client.get(DETAIL.format(customer.id), headers=headers) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["RateLimit-Limit"] == str(LIMITS["rate_limit_user_per_minute"])
    assert answers[2].headers["RateLimit-Remaining"] == "0"
    assert int(answers[3].headers["Retry-After"]) > 0


async def test_an_id_beyond_the_column_is_a_422_and_leaves_nothing_open(app, client, maker):
    org = await make_org(maker)
    answer = await client.get(DETAIL.format(2**70), headers=auth(app, org.rep_a))
    assert answer.status_code == 422, answer.text
    assert "out of range" in answer.json()["detail"]
    if app.state.engine.dialect.name == "postgresql":
        assert await backends_in_a_transaction(app.state.engine.url) == 0
    # The pool still serves.
    customer = await make_customer(maker, org.rep_a)
    assert (await client.get(DETAIL.format(customer.id), headers=auth(app, org.rep_a))).is_success


async def test_the_driver_reads_what_sqlalchemy_reads(app, maker):
    """Bind and result processing by the column types: the same records either way."""
    org = await make_org(maker)
    for index in range(3):
        await make_customer(
            maker,
            org.rep_a,
            name=f"客户{index}",
            lat=31.2304 + index,
            lng=121.4737,
            phones=["13800000000"],
            custom_fields={"规模": index},
        )
    statement = (
        select(Customer)
        .where(
            Customer.owner_id.in_([org.rep_a.id, org.rep_b.id]),
            Customer.created_at > bindparam("since"),
        )
        .order_by(Customer.id)
    )
    since = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    async with app.state.engine.connect() as connection:
        through_sqlalchemy = await Reads(connection).all(statement, {"since": since})
        direct = await (await Reads.on(connection)).all(statement, {"since": since})
    assert len(direct) == 3
    assert direct == through_sqlalchemy
    assert all(r.created_at.tzinfo is dt.UTC for r in direct)
    assert [r.custom_fields for r in direct] == [{"规模": 0}, {"规模": 1}, {"规模": 2}]


async def test_on_postgresql_the_statements_skip_sqlalchemy(app, client, maker):
    postgresql_only(app)
    org = await make_org(maker)
    customer = await make_customer(maker, org.rep_a)
    headers = auth(app, org.rep_a)
    assert (await client.get(DETAIL.format(customer.id), headers=headers)).is_success
    with count_statements(app.state.engine) as through_sqlalchemy:
        again = await client.get(DETAIL.format(customer.id), headers=headers)
    assert again.status_code == 200
    assert through_sqlalchemy == []  # stamp, customer and tags went to asyncpg itself
    async with app.state.engine.connect() as connection:
        reads = await Reads.on(connection)
        assert reads.driver is not None
        async with app.state.sessionmaker() as session:
            principal = await app.state.principals.get(session, org.rep_a.id)
        view = await read_customer(reads, principal, customer.id)
    assert view.customer.id == customer.id
    kept = principal.statements["customer detail"]
    assert prepared(kept, app.state.engine.dialect) is prepared(kept, app.state.engine.dialect)


async def test_a_driver_error_is_raised_as_sqlalchemy_raises_it(app):
    postgresql_only(app)
    async with app.state.engine.connect() as connection:
        reads = await Reads.on(connection)
        with pytest.raises(DBAPIError) as raised:
            await reads.all(
                select(Customer.id).where(Customer.id == bindparam("id")), {"id": 2**70}
            )
        assert not raised.value.connection_invalidated  # not a database away
        assert connection.invalidated  # but not given back to the pool either


def test_only_queries_are_prepared(app):
    with pytest.raises(TypeError, match="queries only"):
        prepared(update(Customer).values(name="x"), app.state.engine.dialect)  # type: ignore[arg-type]


def test_a_record_reads_as_a_row():
    record = Record(id=1, name="甲")
    assert (record.id, record["name"]) == (1, "甲")
    with pytest.raises(AttributeError):
        _ = record.missing


async def tagged(maker, customer, groups):
    """Tag ``customer``: ``groups`` as (group name, position, [(tag name, position, current)])."""
    async with maker() as session, session.begin():
        for group_name, group_position, tags in groups:
            group = TagGroup(name=group_name, position=group_position, color="#f00")
            session.add(group)
            await session.flush()
            for tag_name, tag_position, current in tags:
                tag = Tag(group_id=group.id, name=tag_name, position=tag_position)
                session.add(tag)
                await session.flush()
                removed = None if current else dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
                session.add(CustomerTag(customer_id=customer.id, tag_id=tag.id, removed_at=removed))


async def test_the_detail_reads_its_tags_and_the_stamp_in_its_own_query(app, client, maker):
    org = await make_org(maker)
    customer = await make_customer(maker, org.rep_a)
    bare = await make_customer(maker, org.rep_a)
    await tagged(
        maker,
        customer,
        [
            ("后排", 2, [("乙", 1, True), ("甲", 0, True)]),
            ("前排", 1, [("丙", 5, True), ("已摘", 0, False)]),
        ],
    )
    headers = auth(app, org.rep_a)
    assert (await client.get(DETAIL.format(customer.id), headers=headers)).is_success
    with count_statements(app.state.engine, direct=True) as sent:
        detail = await client.get(DETAIL.format(customer.id), headers=headers)
    assert detail.status_code == 200
    assert len(sent) == 1  # the kept principal is checked by this query's stamp column
    tags = detail.json()["tags"]
    # Groups by position, then tags by position within them; removed tags are history.
    assert [(t["group_name"], t["name"]) for t in tags] == [
        ("前排", "丙"),
        ("后排", "甲"),
        ("后排", "乙"),
    ]
    assert set(tags[0]) == {"id", "name", "group_id", "group_name", "color"}
    listed = await client.get("/api/v1/customers", headers=headers)
    by_id = {c["id"]: c for c in listed.json()["items"]}
    assert by_id[customer.id]["tags"] == tags  # the list's query gives the same
    assert (await client.get(DETAIL.format(bare.id), headers=headers)).json()["tags"] == []
    assert by_id[bare.id]["tags"] == []


async def bump_the_stamp(maker) -> None:
    async with maker() as session, session.begin():
        await session.execute(update(AccessStamp).values(version=AccessStamp.version + 1))


async def test_checked_reads_return_nothing_before_the_stamp_is_checked(app, maker):
    org = await make_org(maker)
    customer = await make_customer(maker, org.rep_a)
    by_id = select(Customer.id, STAMP_COLUMN).where(Customer.id == bindparam("id"))
    plain = select(Customer.id).where(Customer.id == bindparam("id"))
    async with app.state.engine.connect() as connection:
        stamp = await Reads(connection).scalar(STAMP)
    engine = app.state.engine
    async with Reads.checkout(engine, app.state.read_options) as reads:
        checked = CheckedReads(reads, stamp)
        with count_statements(engine, direct=True) as sent:
            rows = await checked.all(by_id, {"id": customer.id})
        assert rows == [{"id": customer.id}] and checked.checked  # the stamp column is dropped
        assert len(sent) == 1
        with count_statements(engine, direct=True) as sent:
            assert await checked.all(plain, {"id": customer.id}) == [{"id": customer.id}]
        assert len(sent) == 1  # checked once per request
    async with Reads.checkout(engine, app.state.read_options) as reads:
        checked = CheckedReads(reads, stamp)
        with count_statements(engine, direct=True) as sent:
            assert await checked.all(plain, {"id": customer.id}) == [{"id": customer.id}]
        assert len(sent) == 2  # a query without the column: the stamp is read first
    async with Reads.checkout(engine, app.state.read_options) as reads:
        checked = CheckedReads(reads, stamp)
        with count_statements(engine, direct=True) as sent:
            assert await checked.all(by_id, {"id": -1}) == []
        assert len(sent) == 2 and checked.checked  # no row: the stamp is read on its own
    await bump_the_stamp(maker)
    for statement, found in ((by_id, customer.id), (by_id, -1), (plain, customer.id)):
        async with Reads.checkout(engine, app.state.read_options) as reads:
            with pytest.raises(StaleAccess):
                await CheckedReads(reads, stamp).all(statement, {"id": found})


async def test_a_stale_principal_is_served_again_once_guarded_once(
    app, settings, maker, monkeypatch
):
    monkeypatch.setattr(deps, "utcnow", lambda: NOON)
    org = await make_org(maker)
    customer = await make_customer(maker, org.rep_a)
    async with limited_app(settings) as (limited, client):
        headers = auth(limited, org.rep_a)
        first = await client.get(DETAIL.format(customer.id), headers=headers)
        assert first.headers["RateLimit-Remaining"] == "2"
        await bump_the_stamp(maker)  # as any change to access does (another worker, SQL)
        with count_statements(limited.state.engine, direct=True) as sent:
            again = await client.get(DETAIL.format(customer.id), headers=headers)
        assert again.status_code == 200 and again.json() == first.json()
        # Its own query found the stamp changed; then the stamp, the principal built anew, and
        # the query once more.
        details = [s for s in sent if "FROM customers" in s and "access_stamp" in s]
        assert len(details) == 2 and any("FROM roles" in s for s in sent)
        assert again.headers["RateLimit-Remaining"] == "1"  # counted once
        async with maker() as session, session.begin():
            await session.execute(
                update(User).where(User.id == org.rep_a.id).values(is_active=False)
            )
        assert (await client.get(DETAIL.format(customer.id), headers=headers)).status_code == 401


async def test_checked_out_reads_give_a_broken_connection_back_invalidated(app):
    postgresql_only(app)
    async with Reads.checkout(app.state.engine, app.state.read_options) as reads:
        assert reads.connection is None and reads.driver is not None  # the pool's own
        with pytest.raises(DBAPIError):
            await reads.all(
                select(Customer.id).where(Customer.id == bindparam("id")), {"id": 2**70}
            )
        driver = reads.driver
    assert driver.is_closed()  # not given back to the pool to serve again
    async with Reads.checkout(app.state.engine, app.state.read_options) as reads:
        assert reads.driver is not driver
        assert await reads.scalar(select(1)) == 1  # type: ignore[arg-type]
