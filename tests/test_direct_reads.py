"""Direct reads (ADR 0014): the customer detail is served without FastAPI's dependency solving,
its statements run on the driver on PostgreSQL — and it answers, authorizes, documents and
fails exactly as an endpoint with dependencies does."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import DBAPIError

from app import deps
from app.models import Customer
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
