"""Test data factories: organisation, users with roles, customers, and ready-made auth headers."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.models import Contact, Customer, CustomerPhone, CustomerTeamMember, Department, Role, User
from app.models.base import utcnow
from app.reads import _Prepared
from app.security import create_access_token, hash_password_sync
from app.services.normalize import normalize_email, normalize_name

PASSWORD = "correct horse battery"
_PASSWORD_HASH = hash_password_sync(PASSWORD)
_seq = itertools.count(1)

ALL_PERMISSIONS = [
    "customer.create",
    "customer.update",
    "customer.delete",
    "contract.approve",
    "target.manage",
    "pool.manage",
    "config.manage",
    "org.manage",
    "integration.manage",
    "personal_data.manage",
]


@dataclass
class Org:
    """Admin; east (manager mgr_east, reps rep_a, rep_b) with child hz (manager mgr_hz, rep rep_c);
    south (rep rep_d)."""

    admin: User
    mgr_east: User
    mgr_hz: User
    rep_a: User
    rep_b: User
    rep_c: User
    rep_d: User
    east: Department
    hz: Department
    south: Department
    roles: dict[str, Role]


async def make_department(
    session: AsyncSession, name: str, parent: Department | None = None
) -> Department:
    department = Department(name=name, parent_id=parent.id if parent else None)
    session.add(department)
    await session.flush()
    department.path = f"{parent.path if parent else '/'}{department.id}/"
    await session.flush()
    return department


async def make_role(session: AsyncSession, name: str, permissions: list[str], scope: str) -> Role:
    role = Role(name=name, permissions=permissions, scopes={"customer": scope})
    session.add(role)
    await session.flush()
    return role


async def make_user(
    session: AsyncSession, username: str, roles: list[Role], department: Department | None = None
) -> User:
    user = User(
        username=username,
        display_name=username.replace("_", " ").title(),
        password_hash=_PASSWORD_HASH,
        department_id=department.id if department else None,
        roles=roles,
    )
    session.add(user)
    await session.flush()
    return user


async def make_org(maker: async_sessionmaker[AsyncSession]) -> Org:
    async with maker() as session, session.begin():
        roles = {
            "admin": await make_role(session, "admin", ALL_PERMISSIONS, "all"),
            "manager": await make_role(
                session,
                "manager",
                ["customer.create", "customer.update", "customer.delete", "target.manage"],
                "department_and_children",
            ),
            "rep": await make_role(session, "rep", ["customer.create", "customer.update"], "own"),
        }
        east = await make_department(session, "East")
        hz = await make_department(session, "Hangzhou", east)
        south = await make_department(session, "South")
        admin = await make_user(session, "admin", [roles["admin"]])
        mgr_east = await make_user(session, "mgr_east", [roles["manager"]], east)
        mgr_hz = await make_user(session, "mgr_hz", [roles["manager"]], hz)
        rep_a = await make_user(session, "rep_a", [roles["rep"]], east)
        rep_b = await make_user(session, "rep_b", [roles["rep"]], east)
        rep_c = await make_user(session, "rep_c", [roles["rep"]], hz)
        rep_d = await make_user(session, "rep_d", [roles["rep"]], south)
        east.manager_id = mgr_east.id
        hz.manager_id = mgr_hz.id
        await session.flush()
        return Org(admin, mgr_east, mgr_hz, rep_a, rep_b, rep_c, rep_d, east, hz, south, roles)


async def make_customer(
    maker: async_sessionmaker[AsyncSession],
    owner: User | None,
    name: str | None = None,
    *,
    phones: list[str] | None = None,
    **fields: Any,
) -> Customer:
    name = name or f"测试客户{next(_seq)}号有限公司"
    phones = phones if phones is not None else [f"139{next(_seq):08d}"]
    fields.setdefault("owner_assigned_at", utcnow())
    async with maker() as session, session.begin():
        customer = Customer(
            name=name,
            name_normalized=normalize_name(name),
            phones=phones,
            email_normalized=normalize_email(fields.get("email")),
            owner_id=owner.id if owner else None,
            **fields,
        )
        session.add(customer)
        await session.flush()
        session.add_all(CustomerPhone(customer_id=customer.id, number=p) for p in phones)
        return customer


async def make_contact(
    maker: async_sessionmaker[AsyncSession], customer: Customer, name: str, **fields: Any
) -> Contact:
    async with maker() as session, session.begin():
        contact = Contact(customer_id=customer.id, name=name, **fields)
        session.add(contact)
        await session.flush()
        return contact


async def add_team_member(
    maker: async_sessionmaker[AsyncSession],
    customer: Customer,
    user: User,
    access: str = "read",
    expires_at: dt.datetime | None = None,
) -> None:
    async with maker() as session, session.begin():
        session.add(
            CustomerTeamMember(
                customer_id=customer.id, user_id=user.id, access=access, expires_at=expires_at
            )
        )


def auth(app: Any, user: User) -> dict[str, str]:
    """Headers carrying a valid access token for ``user`` (no password round trip)."""
    return {"Authorization": f"Bearer {create_access_token(app.state.token_settings, user.id)}"}


@contextmanager
def count_statements(engine: AsyncEngine, *, direct: bool = False) -> Iterator[list[str]]:
    """The SQL statements ``engine`` runs inside the block (transaction control left out); with
    ``direct``, also those ``app.reads`` sends on the driver itself (on PostgreSQL)."""
    statements: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            statements.append(statement)

    arguments = _Prepared.arguments

    def sent(self: _Prepared, params: Any) -> tuple[str, list[Any]]:
        sql, values = arguments(self, params)
        statements.append(sql)
        return sql, values

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    if direct:
        _Prepared.arguments = sent  # type: ignore[method-assign]
    try:
        yield statements
    finally:
        _Prepared.arguments = arguments  # type: ignore[method-assign]
        event.remove(engine.sync_engine, "before_cursor_execute", before)


def driver_dsn(url: str | URL) -> str:
    """The PostgreSQL database of ``url`` as a plain asyncpg DSN, for a connection of a test's
    own, outside the app's pool."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def backends_in_a_transaction(url: str | URL) -> int:
    """Other connections to the app's PostgreSQL database that are inside a transaction, asked on
    a connection of the test's own (one from the pool might be the one being checked)."""
    import asyncpg  # type: ignore[import-untyped]

    observer = await asyncpg.connect(driver_dsn(url))
    try:
        count: int = await observer.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
        )
    finally:
        await observer.close()
    return count
