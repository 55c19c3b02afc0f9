"""Principals are reused between requests while the access stamp stands, and never once what
they were built from changed — whoever changed it, through the API or straight in the database."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select, text, update

from app import access
from app.models import AccessStamp, Role, User
from app.models.base import utcnow
from tests.factories import add_team_member, auth, count_statements, make_customer, make_org


async def stamp(maker: Any) -> int:
    async with maker() as session:
        version: int = await session.scalar(select(AccessStamp.version))
        return version


async def test_a_second_request_reuses_the_principal(app, client, maker):
    org = await make_org(maker)
    customer = await make_customer(maker, org.rep_a)
    headers = auth(app, org.rep_a)
    with count_statements(app.state.engine, direct=True) as first:
        assert (await client.get(f"/api/v1/customers/{customer.id}", headers=headers)).is_success
    with count_statements(app.state.engine, direct=True) as second:
        assert (await client.get(f"/api/v1/customers/{customer.id}", headers=headers)).is_success
    built = [s for s in first if "FROM roles" in s or "FROM pools" in s]
    assert len(built) == 2
    assert not [s for s in second if "FROM roles" in s or "FROM pools" in s]
    # The second builds nothing, and checks the kept principal with the customer's own query:
    # it reads the stamp (and the tags) in it.
    assert len(second) == 1
    assert "access_stamp" in second[0] and "FROM customer_tags" in second[0]


async def test_a_role_changed_in_the_database_counts_from_the_next_request(app, client, maker):
    org = await make_org(maker)
    theirs = await make_customer(maker, org.rep_b)
    headers = auth(app, org.rep_a)
    path = f"/api/v1/customers/{theirs.id}"
    assert (await client.get(path, headers=headers)).status_code == 404
    before = await stamp(maker)
    async with maker() as session, session.begin():  # as another process would
        await session.execute(
            update(Role).where(Role.id == org.roles["rep"].id).values(scopes={"customer": "all"})
        )
    assert await stamp(maker) > before
    assert (await client.get(path, headers=headers)).status_code == 200
    async with maker() as session, session.begin():
        await session.execute(
            update(Role).where(Role.id == org.roles["rep"].id).values(scopes={"customer": "own"})
        )
    assert (await client.get(path, headers=headers)).status_code == 404
    async with maker() as session, session.begin():
        await session.execute(update(User).where(User.id == org.rep_a.id).values(is_active=False))
    assert (await client.get(path, headers=headers)).status_code == 401


async def test_a_team_membership_shared_through_the_api_counts_at_once(app, client, maker):
    org = await make_org(maker)
    theirs = await make_customer(maker, org.rep_b)
    path = f"/api/v1/customers/{theirs.id}"
    assert (await client.get(path, headers=auth(app, org.rep_a))).status_code == 404
    shared = await client.post(
        f"{path}/members",
        json={"user_id": org.rep_a.id, "access": "read"},
        headers=auth(app, org.rep_b),
    )
    assert shared.status_code == 201, shared.text
    assert (await client.get(path, headers=auth(app, org.rep_a))).status_code == 200
    removed = await client.delete(f"{path}/members/{org.rep_a.id}", headers=auth(app, org.rep_b))
    assert removed.status_code == 204, removed.text
    assert (await client.get(path, headers=auth(app, org.rep_a))).status_code == 404


async def test_an_expiring_membership_ends_without_any_change(app, client, maker, monkeypatch):
    org = await make_org(maker)
    theirs = await make_customer(maker, org.rep_b)
    expires = utcnow() + dt.timedelta(hours=1)
    await add_team_member(maker, theirs, org.rep_a, expires_at=expires)
    path = f"/api/v1/customers/{theirs.id}"
    headers = auth(app, org.rep_a)
    assert (await client.get(path, headers=headers)).status_code == 200
    monkeypatch.setattr(access, "utcnow", lambda: expires + dt.timedelta(seconds=1))
    assert (await client.get(path, headers=headers)).status_code == 404


async def test_changes_elsewhere_leave_the_stamp_alone(app, client, maker):
    org = await make_org(maker)
    before = await stamp(maker)
    created = await client.post(
        "/api/v1/customers", json={"name": "杭州未触及有限公司"}, headers=auth(app, org.rep_a)
    )
    assert created.status_code == 201, created.text
    assert await stamp(maker) == before


async def test_one_transaction_moves_the_stamp_on_postgresql_once(app, maker):
    if app.state.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's row triggers bump per row; one writer at a time needs no more")
    org = await make_org(maker)
    before = await stamp(maker)
    async with maker() as session, session.begin():
        await session.execute(update(Role).values(description="x"))
        await session.execute(update(User).where(User.id == org.rep_a.id).values(locale="en"))
        # Deferred to the commit: not yet moved inside the transaction.
        assert (await session.scalar(text("SELECT version FROM access_stamp"))) == before
    assert await stamp(maker) == before + 1


async def test_the_detail_statement_is_built_once_per_principal(app, client, maker):
    org = await make_org(maker)
    first = await make_customer(maker, org.rep_a)
    second = await make_customer(maker, org.rep_a)
    theirs = await make_customer(maker, org.rep_b)
    headers = auth(app, org.rep_a)
    assert (await client.get(f"/api/v1/customers/{first.id}", headers=headers)).is_success
    principal = app.state.principals._entries[org.rep_a.id][1]
    kept = principal.statements["customer detail"]

    again = await client.get(f"/api/v1/customers/{second.id}", headers=headers)
    assert again.json()["id"] == second.id  # the id is a parameter, not part of the statement
    assert app.state.principals._entries[org.rep_a.id][1].statements["customer detail"] is kept
    refused = await client.get(f"/api/v1/customers/{theirs.id}", headers=headers)
    assert refused.status_code == 404  # and the scope still applies


async def test_a_rebuilt_principal_starts_without_statements(app, client, maker):
    org = await make_org(maker)
    theirs = await make_customer(maker, org.rep_b)
    headers = auth(app, org.rep_a)
    url = f"/api/v1/customers/{theirs.id}"
    assert (await client.get(url, headers=headers)).status_code == 404
    await add_team_member(maker, theirs, org.rep_a)  # bumps the stamp
    assert (await client.get(url, headers=headers)).status_code == 200


def test_statements_are_not_kept_when_the_filter_reads_the_clock() -> None:
    principal = access.Principal(
        user_id=1,
        username="rep",
        display_name="Rep",
        department_id=None,
        department_path=None,
        managed_paths=(),
        permissions=frozenset(),
    )
    built: list[object] = []

    def build() -> object:
        built.append(object())
        return built[-1]

    assert access.built_for(principal, "s", build) is access.built_for(principal, "s", build)
    assert len(built) == 1
    # dataclasses.replace (an API key acting as the user) starts a memory of its own
    assert dataclasses.replace(principal, api_key_id=7).statements == {}

    # Too many team memberships to inline: the filter compares expiries with now.
    many = dataclasses.replace(principal, team_read_ids=None)
    access.built_for(many, "s", build)
    access.built_for(many, "s", build)
    assert len(built) == 3 and many.statements == {}
