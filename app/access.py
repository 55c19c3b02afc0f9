"""Data scope: the one place that decides which records a caller may read or write (SPEC A3).

A role grants actions (``PERMISSIONS``) and a data scope per entity (``DataScope``). A caller's
effective scope for an entity is the widest among their roles. Access to a customer is:

    readable = owner inside the caller's scope  OR  caller is an unexpired team member
               OR  the customer sits in a pool the caller belongs to (SPEC C1)
    writable = (owner inside the scope AND the role may update) OR an unexpired read-write member

Personal fields (phones, e-mail, address ... of customers and contacts, ``PERSONAL_FIELDS``) have
one access level each for the caller — ``hidden``, ``masked``, ``read`` or ``edit`` (SPEC J4). The
roles give it (``role_field_permissions``; nothing configured: ``edit``; several roles: the most
permissive), and while a customer sits in a pool, the pool's hidden fields (e.g. phones) are
``hidden`` for everyone but the pool's admins (SPEC C5) — the most restrictive of the two wins
(``field_levels``). Every response withholds through ``withhold``, every search through
``revealing``, every write checks ``check_editable``, whatever the client asks for.

Child records (contacts, and later follow-ups, opportunities ...) are readable/writable exactly
when their customer is. Every list, detail, write, export and analytics query takes its filter
from here; a record outside the filter answers 404, as if it did not exist.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, exists, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.base import ExecutableOption
from sqlalchemy.sql.elements import BindParameter

from app.errors import Forbidden, NotFound
from app.models import (
    AccessStamp,
    Contact,
    Contract,
    Customer,
    CustomerTeamMember,
    Department,
    FollowUp,
    Notification,
    Opportunity,
    Order,
    Pool,
    PoolMember,
    PushSubscription,
    Role,
    RoleFieldPermission,
    User,
    Visit,
    user_roles,
)
from app.models.base import utcnow
from app.reads import Reads, Record
from app.services.normalize import mask_email, mask_name, mask_phone, mask_text


class DataScope(StrEnum):
    OWN = "own"
    OWN_AND_SUBORDINATES = "own_and_subordinates"
    DEPARTMENT = "department"
    DEPARTMENT_AND_CHILDREN = "department_and_children"
    ALL = "all"


_SCOPE_RANK = {s: i for i, s in enumerate(DataScope)}

# At most this many team-member customer ids are inlined into a principal's filters.
TEAM_IDS_INLINE_LIMIT = 500

# Entities that carry a data scope in a role.
SCOPED_ENTITIES = ("customer",)

# Actions a role can grant. Reading needs no action: it is governed by the data scope alone.
PERMISSIONS: Mapping[str, str] = {
    "customer.create": "Create customers",
    "customer.update": "Edit customers and their contacts and tags within the data scope",
    "customer.delete": "Delete (soft) customers within the data scope",
    "contract.approve": "Approve or reject contracts within the data scope",
    "target.manage": "Set monthly targets for users and departments within the data scope",
    "pool.manage": "Create and configure customer pools (rules, members, hidden fields)",
    "config.manage": "Manage custom fields, tag groups and tags",
    "org.manage": "Manage users, departments and roles",
    "integration.manage": "Manage API keys (and later webhooks) for third-party integrations",
    "personal_data.manage": "Export everything held about a customer, erase (anonymise) it, and "
    "read the log of exports and erasures (SPEC J4)",
}


class FieldLevel(StrEnum):
    """How much of a personal field the caller gets, least to most."""

    HIDDEN = "hidden"  # empty
    MASKED = "masked"  # a masked display (``138****5678``); dates and places: empty
    READ = "read"
    EDIT = "edit"


_LEVEL_RANK = {level: i for i, level in enumerate(FieldLevel)}

# The personal fields with a level per role: a customer's, then its contacts' (``contact.``).
PERSONAL_FIELDS: Mapping[str, str] = {
    "phones": "Customer phone numbers",
    "email": "Customer e-mail",
    "address": "Customer street address",
    "location": "Customer location (lat/lng, distance)",
    "birth_date": "Customer birth date",
    "notes": "Customer notes",
    "contact.name": "Contact name",
    "contact.phones": "Contact phone numbers",
    "contact.email": "Contact e-mail",
    "contact.wechat": "Contact WeChat id",
    "contact.birth_date": "Contact birth date",
    "contact.notes": "Contact notes",
}
CONTACT_FIELDS = tuple(f for f in PERSONAL_FIELDS if f.startswith("contact."))
# The record keys (response keys, columns, audit keys) each personal field covers.
CUSTOMER_KEYS: Mapping[str, tuple[str, ...]] = {
    "phones": ("phones",),
    "email": ("email",),
    "address": ("address",),
    "location": ("lat", "lng", "distance_km"),
    "birth_date": ("birth_date",),
    "notes": ("notes",),
}
CONTACT_KEYS: Mapping[str, tuple[str, ...]] = {
    f: (f.removeprefix("contact."),) for f in CONTACT_FIELDS
}
# What a pool's hidden field (schemas.pool.HiddenField) hides: its phones and e-mail hide the
# contacts' too, ``contacts`` every contact field (and the contacts themselves, see readable).
POOL_HIDES: Mapping[str, tuple[str, ...]] = {
    "phones": ("phones", "contact.phones"),
    "email": ("email", "contact.email"),
    "contacts": ("contacts", *CONTACT_FIELDS),
}
# Masked displays by record key; keys missing here (dates, coordinates) are simply emptied.
_MASKS: Mapping[str, Callable[[Any], Any]] = {
    "phones": lambda v: [mask_phone(p) for p in v or []],
    "email": mask_email,
    "name": lambda v: mask_name(v) if v else v,
    "address": mask_text,
    "notes": mask_text,
    "wechat": mask_text,
}
_BLANKS: Mapping[str, Callable[[], Any]] = {"phones": list, "name": lambda: "***"}


@dataclass(frozen=True)
class Principal:
    """Who is asking: the user, their department, what their roles allow."""

    user_id: int
    username: str
    display_name: str
    department_id: int | None
    department_path: str | None
    managed_paths: tuple[str, ...]
    permissions: frozenset[str]
    scopes: Mapping[str, DataScope] = field(default_factory=dict)
    role_ids: tuple[int, ...] = ()
    # Customers shared with the caller as a team member (unexpired), loaded with the principal so
    # scope filters stay index-friendly (``owner_id = ? OR id IN (1, 2, 3)``). None when there are
    # more than TEAM_IDS_INLINE_LIMIT: the filters then fall back to a sub-select.
    team_read_ids: frozenset[int] | None = frozenset()
    team_write_ids: frozenset[int] | None = frozenset()
    # When the first of those memberships expires (None: none does): the principal is stale
    # from then on (``PrincipalCache``).
    team_valid_until: dt.datetime | None = None
    # Pools the caller belongs to (as member or admin, directly or through a department) and
    # administers; the hidden fields of every pool that hides any.
    pool_ids: frozenset[int] = frozenset()
    pool_admin_ids: frozenset[int] = frozenset()
    pool_hidden: Mapping[int, frozenset[str]] = field(default_factory=dict)
    # The roles' level of each personal field that is below ``edit`` (absent: edit).
    field_levels: Mapping[str, FieldLevel] = field(default_factory=dict)
    # Set when the caller is an API key acting as this user: what the key may do on top of the
    # user's own rights (``services.api_keys``). None for the user's own sign-in.
    key_scopes: frozenset[str] | None = None
    api_key_id: int | None = None
    # Statements built for this principal (``built_for``); not copied by dataclasses.replace.
    statements: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def filters_read_the_clock(self) -> bool:
        """Its scope filters compare team memberships' expiries with now (too many to inline
        as ids, ``_team_member``): a statement built from them holds for one request only."""
        return self.team_read_ids is None or self.team_write_ids is None

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def scope(self, entity: str) -> DataScope:
        return self.scopes.get(entity, DataScope.OWN)

    @property
    def is_admin(self) -> bool:
        return "org.manage" in self.permissions

    def field_level(self, name: str) -> FieldLevel:
        """The roles' level of a personal field (pools may restrict it further: field_levels)."""
        return self.field_levels.get(name, FieldLevel.EDIT)


def effective_field_levels(
    role_ids: Sequence[int], rows: Sequence[tuple[int, str, str]]
) -> dict[str, FieldLevel]:
    """The most permissive level each field gets from any of the roles; a role that does not
    configure a field gives ``edit`` (so does having no role at all). Only the fields below
    ``edit`` are returned."""
    if not role_ids:
        return {}
    configured: dict[str, dict[int, FieldLevel]] = {}
    for role_id, name, level in rows:
        configured.setdefault(name, {})[role_id] = FieldLevel(level)
    result: dict[str, FieldLevel] = {}
    for name, per_role in configured.items():
        best = max(
            (per_role.get(r, FieldLevel.EDIT) for r in role_ids), key=_LEVEL_RANK.__getitem__
        )
        if best is not FieldLevel.EDIT:
            result[name] = best
    return result


def most_restrictive(a: FieldLevel, b: FieldLevel) -> FieldLevel:
    return a if _LEVEL_RANK[a] <= _LEVEL_RANK[b] else b


def at_least(level: FieldLevel, wanted: FieldLevel) -> bool:
    return _LEVEL_RANK[level] >= _LEVEL_RANK[wanted]


def effective_scopes(roles: Sequence[Role]) -> dict[str, DataScope]:
    """The widest scope each entity gets from any of the roles."""
    result: dict[str, DataScope] = {}
    for role in roles:
        for entity, raw in (role.scopes or {}).items():
            scope = DataScope(raw)
            if entity not in result or _SCOPE_RANK[scope] > _SCOPE_RANK[result[entity]]:
                result[entity] = scope
    return result


async def load_principal(session: AsyncSession, user_id: int) -> Principal | None:
    """Build the principal for an active user (five small queries), or None."""
    row = (
        await session.execute(
            select(User, Department.path)
            .outerjoin(Department, Department.id == User.department_id)
            .where(User.id == user_id, User.is_active.is_(True))
        )
    ).first()
    if row is None:
        return None
    user, path = row
    # The roles with their field levels, in one query (a role without any: one row of NULLs).
    role_rows = (
        await session.execute(
            select(Role, RoleFieldPermission.field, RoleFieldPermission.level)
            .join(user_roles, user_roles.c.role_id == Role.id)
            .outerjoin(RoleFieldPermission, RoleFieldPermission.role_id == Role.id)
            .where(user_roles.c.user_id == user_id)
        )
    ).all()
    roles = list({role.id: role for role, _, _ in role_rows}.values())
    field_rows = [(role.id, name, level) for role, name, level in role_rows if name is not None]
    managed = tuple(
        (
            await session.scalars(select(Department.path).where(Department.manager_id == user_id))
        ).all()
    )
    now = utcnow()
    memberships = (
        await session.execute(
            select(
                CustomerTeamMember.customer_id,
                CustomerTeamMember.access,
                CustomerTeamMember.expires_at,
            )
            .where(CustomerTeamMember.user_id == user_id, unexpired_member(now))
            .limit(TEAM_IDS_INLINE_LIMIT + 1)
        )
    ).all()
    team_read: frozenset[int] | None = frozenset(cid for cid, _, _ in memberships)
    team_write: frozenset[int] | None = frozenset(cid for cid, a, _ in memberships if a == "write")
    expiries = [expires for _, _, expires in memberships if expires is not None]
    if len(memberships) > TEAM_IDS_INLINE_LIMIT:
        team_read = team_write = None
    permissions = frozenset(p for role in roles for p in (role.permissions or []))
    pool_ids, pool_admin_ids, pool_hidden = await _pool_access(session, user_id, path)
    role_ids = tuple(r.id for r in roles)
    return Principal(
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        department_id=user.department_id,
        department_path=path,
        managed_paths=managed,
        permissions=permissions,
        scopes=effective_scopes(roles),
        role_ids=role_ids,
        team_read_ids=team_read,
        team_write_ids=team_write,
        team_valid_until=min(expiries, default=None),
        pool_ids=pool_ids,
        pool_admin_ids=pool_admin_ids,
        pool_hidden=pool_hidden,
        field_levels=effective_field_levels(role_ids, field_rows),
    )


# Core, run on the connection: a request pays for one small read, not the ORM's execution path.
_STAMP_TABLE = AccessStamp.__table__
STAMP = select(_STAMP_TABLE.c.version).where(_STAMP_TABLE.c.id == 1)
# The stamp as a column of another query: ``CheckedReads`` learns from the query's own row that
# the principal it ran for still holds, without a round trip of its own.
STAMP_KEY = "access_stamp"
STAMP_COLUMN = STAMP.scalar_subquery().label(STAMP_KEY)


class StaleAccess(Exception):
    """The access stamp changed since a principal taken from the cache was built: what was
    read for it is discarded, and the request is served again with a principal built anew."""


class CheckedReads(Reads):
    """Reads for a principal taken from the cache before the request read the access stamp
    (``PrincipalCache.kept``, ADR 0014): no result is returned before the stamp is known to be
    the one the principal was built under — read by the query itself when it has a
    ``STAMP_COLUMN`` (the common path: no round trip of its own), otherwise, and when that query
    finds no row, by reading the stamp first. ``StaleAccess`` otherwise. Once checked, later
    queries run as on ``Reads``: the request then holds what a principal read under the stamp
    holds (``PrincipalCache``)."""

    def __init__(self, reads: Reads, stamp: int) -> None:
        super().__init__(
            reads.connection, reads.driver, dialect=reads.dialect, invalidate=reads.invalidate
        )
        self.stamp = stamp
        self.checked = False

    async def all(
        self, statement: Select[Any], params: Mapping[str, Any] | None = None
    ) -> list[Record]:
        if self.checked:
            return await self._all(statement, params)
        if STAMP_KEY not in statement.selected_columns:
            await self._check(None)
            return await self._all(statement, params)
        rows = await self._all(statement, params)
        seen = None  # no row: the stamp is read on its own
        for row in rows:
            seen = row.pop(STAMP_KEY)
        await self._check(seen)
        return rows

    async def _check(self, seen: int | None) -> None:
        if seen is None:
            stamps = await self._all(STAMP)
            seen = stamps[0]["version"] if stamps else None
        if seen != self.stamp:
            raise StaleAccess
        self.checked = True


class PrincipalCache:
    """The principals a process built, reused while nothing they were built from changed.

    Building one takes five queries; a request that reuses one reads a single row instead: the
    access stamp, which triggers bump with every committed change to users, roles, field
    levels, departments, team members, pools and pool members (migration 0016). The stamp is
    read first, in the request's transaction, so what is built after it is at least as new as
    the stamp it is cached under: a change committed in between only makes the next request
    build again (a direct read checks the stamp with its own query: ``kept``, ``CheckedReads``).
    A principal whose team memberships start expiring is stale from then on. Every
    worker process keeps its own; the stamp is in the database they share. Least recently used
    principals are dropped beyond ``size``.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._entries: OrderedDict[int, tuple[int, Principal]] = OrderedDict()

    async def get(self, session: AsyncSession, user_id: int) -> Principal | None:
        """The principal of an active user (as ``load_principal``), or None."""
        stamp = (await (await session.connection()).execute(STAMP)).scalar()
        cached = self.cached(user_id, stamp)
        if cached is not None:
            return cached
        return await self.build(session, user_id, stamp)

    def cached(self, user_id: int, stamp: int | None) -> Principal | None:
        """The principal kept for ``user_id`` if it was built under ``stamp`` (read first, in
        the request) and none of its team memberships has expired since."""
        entry = self.kept(user_id)
        return entry[1] if entry is not None and entry[0] == stamp else None

    def kept(self, user_id: int) -> tuple[int, Principal] | None:
        """The stamp and principal kept for ``user_id``, unless one of its team memberships
        expired since: for a request that has not read the stamp yet and checks it later
        (``CheckedReads``)."""
        entry = self._entries.get(user_id)
        if entry is None:
            return None
        principal = entry[1]
        if principal.team_valid_until is not None and utcnow() >= principal.team_valid_until:
            return None
        self._entries.move_to_end(user_id)
        return entry

    async def build(
        self, session: AsyncSession, user_id: int, stamp: int | None
    ) -> Principal | None:
        """The principal built afresh (its reads after ``stamp`` was read) and kept under it."""
        principal = await load_principal(session, user_id)
        if principal is None or stamp is None:
            self._entries.pop(user_id, None)
            return principal
        self._entries[user_id] = (stamp, principal)
        self._entries.move_to_end(user_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return principal


async def users_field_levels(
    session: AsyncSession, user_ids: Iterable[int]
) -> dict[int, dict[str, FieldLevel]]:
    """The roles' field levels of several users (for what is sent to them, e.g. notifications),
    in two small queries."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    held = (
        await session.execute(
            select(user_roles.c.user_id, user_roles.c.role_id).where(user_roles.c.user_id.in_(ids))
        )
    ).all()
    role_ids = sorted({role_id for _, role_id in held})
    rows = (
        [
            (role_id, name, level)
            for role_id, name, level in await session.execute(
                select(
                    RoleFieldPermission.role_id,
                    RoleFieldPermission.field,
                    RoleFieldPermission.level,
                ).where(RoleFieldPermission.role_id.in_(role_ids))
            )
        ]
        if role_ids
        else []
    )
    return {uid: effective_field_levels([r for u, r in held if u == uid], rows) for uid in ids}


async def _pool_access(
    session: AsyncSession, user_id: int, department_path: str | None
) -> tuple[frozenset[int], frozenset[int], dict[int, frozenset[str]]]:
    """The pools a user belongs to and administers, and what each pool hides (one query)."""
    rows = (
        await session.execute(
            select(
                Pool.id, Pool.hidden_fields, PoolMember.role, PoolMember.user_id, Department.path
            )
            .outerjoin(PoolMember, PoolMember.pool_id == Pool.id)
            .outerjoin(Department, Department.id == PoolMember.department_id)
        )
    ).all()
    member: set[int] = set()
    admin: set[int] = set()
    hidden: dict[int, frozenset[str]] = {}
    for pool_id, hidden_fields, role, member_user, member_path in rows:
        if hidden_fields:
            hidden[pool_id] = frozenset(hidden_fields)
        if member_user == user_id:
            member.add(pool_id)
            if role == "admin":
                admin.add(pool_id)
        elif (
            member_path is not None and department_path and department_path.startswith(member_path)
        ):
            member.add(pool_id)
    return frozenset(member), frozenset(admin), hidden


def hidden_fields(principal: Principal, pool_id: int | None) -> frozenset[str]:
    """Fields of a customer in ``pool_id`` the principal must not see (empty outside pools)."""
    if pool_id is None or pool_id in principal.pool_admin_ids:
        return frozenset()
    return principal.pool_hidden.get(pool_id, frozenset())


def field_levels(principal: Principal, pool_id: int | None) -> dict[str, FieldLevel]:
    """The level of each personal field of a customer in ``pool_id`` (and of its contacts) that
    is below ``edit`` for the principal: the roles' level, and ``hidden`` for what the pool hides
    (the most restrictive wins)."""
    levels = dict(principal.field_levels)
    for name in hidden_fields(principal, pool_id):
        for personal in POOL_HIDES.get(name, (name,)):
            if personal in PERSONAL_FIELDS:
                levels[personal] = FieldLevel.HIDDEN
    return levels


def withhold(
    record: dict[str, Any],
    levels: Mapping[str, FieldLevel],
    keys: Mapping[str, tuple[str, ...]],
) -> dict[str, Any]:
    """``record`` (a response, a file row, an audit diff's values) with each personal field
    below ``read`` emptied or masked — the one place values are withheld."""
    for name, level in levels.items():
        if name not in keys or at_least(level, FieldLevel.READ):
            continue
        for key in keys[name]:
            if key not in record:
                continue
            mask = _MASKS.get(key) if level is FieldLevel.MASKED else None
            blank = _BLANKS.get(key)
            record[key] = mask(record[key]) if mask else blank() if blank else None
    return record


def personal_fields_in(keys: Iterable[str], field_keys: Mapping[str, tuple[str, ...]]) -> set[str]:
    """The personal fields a write of these record keys sets (``lat`` -> ``location``)."""
    given = set(keys)
    return {name for name, covered in field_keys.items() if given.intersection(covered)}


def check_editable(
    principal: Principal, pool_id: int | None, fields: Iterable[str], *, where: str = "body"
) -> None:
    """Forbidden (naming them) when the principal may not edit one of these personal fields."""
    levels = field_levels(principal, pool_id)
    refused = sorted(
        {f for f in fields if not at_least(levels.get(f, FieldLevel.EDIT), FieldLevel.EDIT)}
    )
    if refused:
        raise Forbidden(
            f"you may not change: {', '.join(refused)}",
            errors=[
                {
                    "loc": [where, f.removeprefix("contact.")],
                    "msg": "not editable for your roles",
                    "type": "field_permission",
                }
                for f in refused
            ],
        )


def revealing(principal: Principal, *fields: str) -> ColumnElement[bool]:
    """WHERE clause: customers none of whose ``fields`` the principal may not read (search on
    phones or contact names must not find a customer by what is hidden or masked from the
    caller: by its roles, then by a pool that hides it). Fields are personal fields
    (``phones``, ``contact.name``) or ``contacts`` (the contacts themselves)."""
    wanted = set(fields)
    if any(
        not at_least(principal.field_level(f), FieldLevel.READ)
        for f in wanted
        if f in PERSONAL_FIELDS
    ):
        return false()
    hiding = sorted(
        pool_id
        for pool_id, hidden in principal.pool_hidden.items()
        if pool_id not in principal.pool_admin_ids
        and any(wanted.intersection(POOL_HIDES.get(name, (name,))) for name in hidden)
    )
    if not hiding:
        return true()
    return or_(Customer.pool_id.is_(None), Customer.pool_id.not_in(hiding))


def _users_in_subtrees(paths: Sequence[str]) -> Any:
    """``SELECT users.id`` for members of the departments under any of ``paths``."""
    return (
        select(User.id)
        .join(Department, Department.id == User.department_id)
        .where(or_(*(Department.path.startswith(p, autoescape=True) for p in paths)))
    )


def owner_in_scope(
    principal: Principal, entity: str, owner_col: InstrumentedAttribute[Any]
) -> ColumnElement[bool]:
    """Rows whose owner lies inside the caller's data scope for ``entity``."""
    scope = principal.scope(entity)
    own = owner_col == principal.user_id
    if scope is DataScope.ALL:
        return true()
    if scope is DataScope.OWN:
        return own
    if scope is DataScope.OWN_AND_SUBORDINATES:
        if not principal.managed_paths:
            return own
        return or_(own, owner_col.in_(_users_in_subtrees(principal.managed_paths)))
    if principal.department_id is None or principal.department_path is None:
        return own
    if scope is DataScope.DEPARTMENT:
        return or_(
            own, owner_col.in_(select(User.id).where(User.department_id == principal.department_id))
        )
    # DEPARTMENT_AND_CHILDREN
    return or_(own, owner_col.in_(_users_in_subtrees([principal.department_path])))


def unexpired_member(now: dt.datetime) -> ColumnElement[bool]:
    """Team memberships still in force at ``now``."""
    return or_(CustomerTeamMember.expires_at.is_(None), CustomerTeamMember.expires_at > now)


def _team_member(principal: Principal, *, write: bool, now: dt.datetime) -> ColumnElement[bool]:
    """Customers the caller is an unexpired team member of (with write access if asked)."""
    inline = principal.team_write_ids if write else principal.team_read_ids
    if inline is not None:
        return Customer.id.in_(sorted(inline)) if inline else false()
    members = select(CustomerTeamMember.customer_id).where(
        CustomerTeamMember.user_id == principal.user_id, unexpired_member(now)
    )
    if write:
        members = members.where(CustomerTeamMember.access == "write")
    return Customer.id.in_(members)


def _customer_readable(
    principal: Principal, now: dt.datetime, *, pools: bool = True
) -> ColumnElement[bool]:
    in_scope = owner_in_scope(principal, "customer", Customer.owner_id)
    conditions = [in_scope, _team_member(principal, write=False, now=now)]
    if pools and principal.pool_ids:
        # pool_id is set only while the customer has no owner (a check constraint).
        conditions.append(Customer.pool_id.in_(sorted(principal.pool_ids)))
    return or_(*conditions)


def _contact_readable(principal: Principal, now: dt.datetime) -> ColumnElement[bool]:
    """Contacts of readable customers, unless their pool hides its customers' contacts."""
    return (
        exists()
        .where(
            Customer.id == Contact.customer_id,
            _customer_readable(principal, now),
            revealing(principal, "contacts"),
        )
        .correlate_except(Customer)
    )


def _customer_writable(principal: Principal, now: dt.datetime) -> ColumnElement[bool]:
    member = _team_member(principal, write=True, now=now)
    if not principal.can("customer.update"):
        return member
    return or_(owner_in_scope(principal, "customer", Customer.owner_id), member)


def _via_customer(
    fk: InstrumentedAttribute[Any], rule: Callable[[Principal, dt.datetime], ColumnElement[bool]]
) -> Callable[[Principal, dt.datetime], ColumnElement[bool]]:
    def build(principal: Principal, now: dt.datetime) -> ColumnElement[bool]:
        # The customer row is the subquery's own (never the outer query's, which may also
        # join customers): correlate only on the child's foreign key.
        return exists().where(Customer.id == fk, rule(principal, now)).correlate_except(Customer)

    return build


def _visit_readable(principal: Principal, _now: dt.datetime) -> ColumnElement[bool]:
    """Visits by owner: reps see their own, managers those of the users in their scope."""
    return owner_in_scope(principal, "customer", Visit.owner_id)


def _visit_writable(principal: Principal, _now: dt.datetime) -> ColumnElement[bool]:
    mine = Visit.owner_id == principal.user_id
    if not principal.can("customer.update"):
        return mine
    return or_(mine, owner_in_scope(principal, "customer", Visit.owner_id))


def _opportunity_readable(principal: Principal, now: dt.datetime) -> ColumnElement[bool]:
    """Opportunities the caller owns or oversees, or whose customer the caller may read."""
    return or_(
        owner_in_scope(principal, "customer", Opportunity.owner_id),
        exists()
        .where(Customer.id == Opportunity.customer_id, _customer_readable(principal, now))
        .correlate_except(Customer),
    )


def _opportunity_writable(principal: Principal, _now: dt.datetime) -> ColumnElement[bool]:
    mine = Opportunity.owner_id == principal.user_id
    if not principal.can("customer.update"):
        return mine
    return or_(mine, owner_in_scope(principal, "customer", Opportunity.owner_id))


def _contract_readable(principal: Principal, now: dt.datetime) -> ColumnElement[bool]:
    return or_(
        owner_in_scope(principal, "customer", Contract.owner_id),
        exists()
        .where(Customer.id == Contract.customer_id, _customer_readable(principal, now))
        .correlate_except(Customer),
    )


def _contract_writable(principal: Principal, _now: dt.datetime) -> ColumnElement[bool]:
    mine = Contract.owner_id == principal.user_id
    if not principal.can("customer.update"):
        return mine
    return or_(mine, owner_in_scope(principal, "customer", Contract.owner_id))


def _own(
    column: InstrumentedAttribute[Any],
) -> Callable[[Principal, dt.datetime], ColumnElement[bool]]:
    def build(principal: Principal, _now: dt.datetime) -> ColumnElement[bool]:
        return column == principal.user_id

    return build


_READ_RULES: dict[type[Any], Callable[[Principal, dt.datetime], ColumnElement[bool]]] = {
    Customer: _customer_readable,
    Contact: _contact_readable,
    FollowUp: _via_customer(FollowUp.customer_id, _customer_readable),
    Visit: _visit_readable,
    Opportunity: _opportunity_readable,
    Contract: _contract_readable,
    Order: _via_customer(Order.customer_id, _customer_readable),
    Notification: _own(Notification.user_id),
    PushSubscription: _own(PushSubscription.user_id),
}
_WRITE_RULES: dict[type[Any], Callable[[Principal, dt.datetime], ColumnElement[bool]]] = {
    Customer: _customer_writable,
    Contact: _via_customer(Contact.customer_id, _customer_writable),
    # Logged follow-ups are immutable; writing one needs the customer writable (checked there).
    FollowUp: _via_customer(FollowUp.customer_id, _customer_writable),
    Visit: _visit_writable,
    Opportunity: _opportunity_writable,
    Contract: _contract_writable,
    # Orders are a ledger: recorded against a customer one may change, never edited.
    Order: _via_customer(Order.customer_id, _customer_writable),
    Notification: _own(Notification.user_id),
    PushSubscription: _own(PushSubscription.user_id),
}


def readable(principal: Principal, model: type[Any]) -> ColumnElement[bool]:
    """WHERE clause: rows of ``model`` the principal may read."""
    try:
        return _READ_RULES[model](principal, utcnow())
    except KeyError:
        raise LookupError(f"no data-scope rule for {model.__name__}") from None


def readable_outside_pools(principal: Principal) -> ColumnElement[bool]:
    """WHERE clause: customers the principal may read, for queries that exclude pool customers
    anyway (the customer list) — the same rule without the pool branch, so the planner keeps
    its index-friendly ``owner_id = ? OR id IN (...)`` shape."""
    return _customer_readable(principal, utcnow(), pools=False)


def writable(principal: Principal, model: type[Any]) -> ColumnElement[bool]:
    """WHERE clause: rows of ``model`` the principal may change."""
    try:
        return _WRITE_RULES[model](principal, utcnow())
    except KeyError:
        raise LookupError(f"no data-scope rule for {model.__name__}") from None


M = TypeVar("M")


def _live(model: type[Any], record_id: int | BindParameter[int]) -> list[ColumnElement[bool]]:
    """The record by id, unless soft-deleted (for models that can be)."""
    conditions = [model.id == record_id]
    if hasattr(model, "deleted_at"):
        conditions.append(model.deleted_at.is_(None))
    return conditions


def select_readable(
    principal: Principal, model: type[M], record_id: int | BindParameter[int]
) -> Select[M]:
    """The live record by id, within the principal's read scope (add columns and joins to it;
    no row means NotFound, as ``get_readable`` answers). ``record_id`` may be a bind parameter,
    for a statement kept by ``built_for``."""
    return select(model).where(*_live(model, record_id), readable(principal, model))


S = TypeVar("S")


def built_for(principal: Principal, name: str, build: Callable[[], S]) -> S:
    """``build()``, kept on the principal under ``name`` and reused by its later requests.

    For statements whose only per-request values are bind parameters. A principal is rebuilt
    whenever anything its scope filters are built from changes (ADR 0012), so a statement built
    from it stays right as long as it does. Building a scope filter and its cache key on every
    request was a tenth of a customer read. The one filter that reads the clock — unexpired
    team memberships, when there are too many to inline as ids — is built afresh every time.
    """
    if principal.filters_read_the_clock:
        return build()
    kept = principal.statements.get(name)
    if kept is None:
        kept = principal.statements[name] = build()
    return kept


async def get_readable(
    session: AsyncSession,
    principal: Principal,
    model: type[M],
    record_id: int,
    *,
    options: Sequence[ExecutableOption] = (),
) -> M:
    """The live record if the principal may read it; otherwise NotFound (as if absent)."""
    stmt = select_readable(principal, model, record_id)
    if options:
        stmt = stmt.options(*options)
    record = await session.scalar(stmt)
    if record is None:
        raise NotFound(f"{model.__name__.lower()} {record_id} not found")
    return record


async def get_writable(
    session: AsyncSession,
    principal: Principal,
    model: type[M],
    record_id: int,
    *,
    options: Sequence[ExecutableOption] = (),
) -> M:
    """The live record for a change: NotFound outside the read scope, Forbidden if read-only."""
    stmt = select(model, writable(principal, model).label("can_write")).where(
        *_live(model, record_id), readable(principal, model)
    )
    if options:
        stmt = stmt.options(*options)
    row = (await session.execute(stmt)).first()
    if row is None:
        raise NotFound(f"{model.__name__.lower()} {record_id} not found")
    record, can_write = row
    if not can_write:
        raise Forbidden(f"you may read but not change this {model.__name__.lower()}")
    return record


async def readable_ids(
    session: AsyncSession, principal: Principal, model: type[Any], ids: Sequence[int]
) -> set[int]:
    """Which of ``ids`` the principal may read (for matches, bulk calls and masking)."""
    if not ids:
        return set()
    rows = await session.scalars(
        select(model.id).where(model.id.in_(ids), readable(principal, model))
    )
    return set(rows.all())


@dataclass(frozen=True)
class CustomerScope:
    """The customer read rule resolved to id sets, for filtering data loaded in bulk (analytics).

    ``owner_ids`` None means every customer (scope ``all``, pools included, as in
    ``readable``); otherwise a customer is in scope when its owner is in ``owner_ids``, or its id
    is in ``team_ids``, or it sits in one of ``pool_ids`` — the same rule as ``readable(principal,
    Customer)``, evaluated once against the small users and team tables.
    """

    owner_ids: frozenset[int] | None
    team_ids: frozenset[int]
    pool_ids: frozenset[int]

    @property
    def key(self) -> tuple[Any, ...]:
        """A hashable identity, for caching results per scope."""
        owners = None if self.owner_ids is None else tuple(sorted(self.owner_ids))
        return owners, tuple(sorted(self.team_ids)), tuple(sorted(self.pool_ids))


async def customer_scope(session: AsyncSession, principal: Principal) -> CustomerScope:
    """Resolve the principal's customer read rule to id sets (three small queries at most)."""
    owner_ids: frozenset[int] | None = None
    if principal.scope("customer") is not DataScope.ALL:
        rows = await session.scalars(
            select(User.id).where(owner_in_scope(principal, "customer", User.id))
        )
        owner_ids = frozenset(rows.all())
    team = principal.team_read_ids
    if team is None:
        rows = await session.scalars(
            select(CustomerTeamMember.customer_id).where(
                CustomerTeamMember.user_id == principal.user_id, unexpired_member(utcnow())
            )
        )
        team = frozenset(rows.all())
    return CustomerScope(owner_ids=owner_ids, team_ids=team, pool_ids=principal.pool_ids)
