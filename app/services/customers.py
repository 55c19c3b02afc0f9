"""Customers: create, read, list/search, update, soft delete, tags, duplicates (SPEC B1–B5)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Label,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    literal_column,
    or_,
    select,
    type_coerce,
    union,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from app import access
from app.access import FieldLevel, Principal
from app.errors import (
    DuplicateCustomer,
    Forbidden,
    NotFound,
    ValidationFailed,
    field_error,
)
from app.models import (
    Contact,
    Customer,
    CustomerPhone,
    CustomerTag,
    CustomerTeamMember,
    Owner,
    Tag,
    TagGroup,
    User,
)
from app.models.base import utcnow
from app.models.sql import json_array_agg, json_object_of
from app.reads import Reads, Record
from app.schemas.customer import CustomerCreate, CustomerOut, CustomerUpdate
from app.services import audit, config, notifications, ownership
from app.services.normalize import (
    escape_like,
    mask_name,
    name_similarity,
    normalize_email,
    normalize_name,
    normalize_phone,
)
from app.services.pagination import MAX_LIMIT, decode_cursor, encode_cursor, keyset_after, order_by
from app.services.versions import check_version, flush_versioned

# Columns recorded field by field in the audit trail.
AUDITED_FIELDS = (
    "name",
    "kind",
    "phones",
    "email",
    "province",
    "city",
    "address",
    "lat",
    "lng",
    "industry",
    "source",
    "level",
    "gender",
    "birth_date",
    "notes",
    "owner_id",
    "deal_status",
    "signed_at",
    "next_follow_up_at",
    "custom_fields",
)
# Response fields read straight from the row (the rest are computed in CustomerView).
_ROW_FIELDS = tuple(
    f
    for f in CustomerOut.model_fields
    if f not in ("owner", "tags", "distance_km", "hidden_fields", "field_levels")
)
NAME_SIMILARITY_THRESHOLD = 0.8
MAX_DUPLICATE_MATCHES = 10
NAME_CANDIDATES = 500


# --- reading -----------------------------------------------------------------------------------


@dataclass
class CustomerView:
    """A customer with what its response needs, loaded without N+1 queries."""

    # The entity, or a record of its columns (a read that changes nothing needs no entity).
    customer: Customer | Record
    owner_name: str | None
    tags: list[dict[str, Any]] = field(default_factory=list)
    distance_km: float | None = None
    # Fields the customer's pool withholds from the caller (SPEC C5).
    hidden: frozenset[str] = frozenset()
    # The caller's level of each personal field below ``edit`` (roles and pool, SPEC J4): what
    # as_dict empties or masks.
    levels: Mapping[str, FieldLevel] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        c = self.customer
        data = {name: getattr(c, name) for name in _ROW_FIELDS}
        data["owner"] = (
            {"id": c.owner_id, "display_name": self.owner_name} if c.owner_id is not None else None
        )
        data["tags"] = self.tags
        data["distance_km"] = self.distance_km
        access.withhold(data, self.levels, access.CUSTOMER_KEYS)
        data["hidden_fields"] = sorted(self.hidden)
        data["field_levels"] = {name: self.levels[name] for name in sorted(self.levels)}
        return data


# A tag as a customer's response has it: these keys, from these columns (``_tag_columns``), in
# this order (``_TAG_ORDER``) — for a list page (``active_tags``) and a detail (``_CURRENT_TAGS``).
_TAG_KEYS = ("id", "name", "group_id", "group_name", "color")
_TAG, _GROUP = Tag.__table__.c, TagGroup.__table__.c
_TAG_COLUMNS = (_TAG.id, _TAG.name, _TAG.group_id, _GROUP.name.label("group_name"), _GROUP.color)
_TAG_ORDER = (_GROUP.position, _GROUP.id, _TAG.position, _TAG.id)


def _active_tags_statement() -> Select[Any]:
    # Core tables, not the mapped classes: run on the connection, the statement skips the ORM's
    # execution path (nothing here is an entity).
    ct = CustomerTag.__table__.c
    assigned = (
        select(ct.customer_id, ct.tag_id)
        .where(ct.customer_id.in_(bindparam("ids", expanding=True)), ct.removed_at.is_(None))
        .cte("page_tags")
        .prefix_with("MATERIALIZED")
    )
    return (
        select(assigned.c.customer_id, *_TAG_COLUMNS)
        .join(Tag.__table__, _TAG.id == assigned.c.tag_id)
        .join(TagGroup.__table__, _GROUP.id == _TAG.group_id)
        .order_by(*_TAG_ORDER)
    )


def _current_tags_column() -> Label[Any]:
    """A customer's current tags as ``active_tags`` gives them, as a column of the customer's
    own statement: a detail reads them without a second round trip (bench/RESULTS.md
    2026-12-03 d)."""
    ct = CustomerTag.__table__.c
    ordered = (
        select(
            *_TAG_COLUMNS,
            _GROUP.position.label("group_position"),
            _TAG.position.label("tag_position"),
        )
        .join_from(CustomerTag.__table__, Tag.__table__, _TAG.id == ct.tag_id)
        .join(TagGroup.__table__, _GROUP.id == _TAG.group_id)
        .where(ct.customer_id == Customer.id, ct.removed_at.is_(None))
        .order_by(*_TAG_ORDER)
        .correlate(Customer)
        .subquery("tags_now")
    )
    c = ordered.c
    fields = [part for key in _TAG_KEYS for part in (literal_column(f"'{key}'"), c[key])]
    aggregate = json_array_agg(
        json_object_of(*fields), c.group_position, c.group_id, c.tag_position, c.id
    )
    return select(aggregate).scalar_subquery().label("current_tags")


# Built once: every page and detail runs them (building them and their cache keys cost more
# than the query on PostgreSQL).
_ACTIVE_TAGS = _active_tags_statement()
_CURRENT_TAGS = _current_tags_column()


async def active_tags(reads: Reads, customer_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """Current tags per customer, in one query for a whole page.

    The page's tag rows are fenced in a MATERIALIZED CTE: given the join, SQLite's planner
    otherwise drives from the (few) tag groups and reads every active assignment of each tag
    (measured: 78 ms for a 50-row page at 50k customers, 0.5 ms fenced).
    """
    result: dict[int, list[dict[str, Any]]] = {cid: [] for cid in customer_ids}
    if not customer_ids:
        return result
    for row in await reads.all(_ACTIVE_TAGS, {"ids": list(customer_ids)}):
        result[row["customer_id"]].append({key: row[key] for key in _TAG_KEYS})
    return result


async def _views(
    session: AsyncSession,
    principal: Principal | None,
    rows: Sequence[tuple[Customer | Record, str | None]],
    distances: Mapping[int, float] | None = None,
) -> list[CustomerView]:
    # The tags on the driver itself where it is asyncpg: a page's hundred tag rows through
    # SQLAlchemy's result were a sixth of a list request (bench/RESULTS.md 2026-12-04).
    reads = await Reads.on(await session.connection())
    return await _views_read(reads, principal, rows, distances)


async def _views_read(
    reads: Reads,
    principal: Principal | None,
    rows: Sequence[tuple[Customer | Record, str | None]],
    distances: Mapping[int, float] | None = None,
    tags: Mapping[int, list[dict[str, Any]]] | None = None,
) -> list[CustomerView]:
    """The views of ``rows``; their tags read in one query unless given."""
    if tags is None:
        tags = await active_tags(reads, [c.id for c, _ in rows])
    return [
        CustomerView(
            c,
            owner_name,
            tags[c.id],
            (distances or {}).get(c.id),
            access.hidden_fields(principal, c.pool_id) if principal else frozenset(),
            access.field_levels(principal, c.pool_id) if principal else {},
        )
        for c, owner_name in rows
    ]


async def get_customer(
    session: AsyncSession, principal: Principal, customer_id: int
) -> CustomerView:
    """The customer if the principal may read it, as ``read_customer``, in the session's
    transaction: changes the session holds are flushed first, so an action that answers with
    the customer shows them."""
    if session.new or session.dirty or session.deleted:
        await session.flush()
    return await read_customer(await Reads.on(await session.connection()), principal, customer_id)


async def read_customer(reads: Reads, principal: Principal, customer_id: int) -> CustomerView:
    """The customer if the principal may read it, with its owner's name and its tags, in one
    query (which also reads the access stamp, for ``access.CheckedReads``).

    Read as a row of columns, not as an entity: loading it into a session cost a sixth of a
    customer read (bench/RESULTS.md, 2026-12-03 b).
    """
    statement = access.built_for(
        principal,
        "customer detail",
        lambda: (
            access.select_readable(principal, Customer, bindparam("record_id"))
            .add_columns(Owner.display_name.label("owner_name"), _CURRENT_TAGS, access.STAMP_COLUMN)
            .outerjoin(Owner, Owner.id == Customer.owner_id)
        ),
    )
    row = await reads.first(statement, {"record_id": customer_id})
    if row is None:
        raise NotFound(f"customer {customer_id} not found")
    tags = {customer_id: row.pop("current_tags")}
    return (await _views_read(reads, principal, [(row, row.owner_name)], tags=tags))[0]


async def view_of(
    session: AsyncSession, customer: Customer, principal: Principal | None = None
) -> CustomerView:
    """The response view of a customer; with ``principal``, the personal fields it may not read
    (roles, pool) are withheld."""
    owner_name = None
    if customer.owner_id is not None:
        owner_name = await session.scalar(
            select(User.display_name).where(User.id == customer.owner_id)
        )
    return (await _views(session, principal, [(customer, owner_name)]))[0]


@dataclass
class CustomerQuery:
    """Filters, sort and page of a customer list (built by the router from query parameters)."""

    q: str | None = None
    # None: customers with an owner (or unowned outside pools); an id: that pool's customers.
    pool_id: int | None = None
    kind: str | None = None
    level: list[str] = field(default_factory=list)
    industry: list[str] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    province: list[str] = field(default_factory=list)
    city: list[str] = field(default_factory=list)
    deal_status: str | None = None
    gender: str | None = None
    owner_id: int | None = None
    department_id: int | None = None
    tag_id: list[int] = field(default_factory=list)
    created_from: Any = None
    created_to: Any = None
    last_follow_up_from: Any = None
    last_follow_up_to: Any = None
    next_follow_up_from: Any = None
    next_follow_up_to: Any = None
    near: tuple[float, float] | None = None
    radius_km: float = 5.0
    custom: dict[str, str] = field(default_factory=dict)
    sort: str | None = None
    limit: int = 50
    cursor: str | None = None


# sort key -> (column, nullable)
SORTS: dict[str, tuple[Any, bool]] = {
    "created_at": (Customer.created_at, False),
    "updated_at": (Customer.updated_at, False),
    "name": (Customer.name, False),
    "last_follow_up_at": (Customer.last_follow_up_at, True),
    "next_follow_up_at": (Customer.next_follow_up_at, True),
}
SORT_CHOICES = sorted([*SORTS, *(f"-{k}" for k in SORTS)])

KM_PER_DEG_LAT = 110.574
KM_PER_DEG_LNG_EQUATOR = 111.320


def _name_contains(column: Any, q: str, dialect: str) -> ColumnElement[bool]:
    """``column ILIKE '%q%'``; on PostgreSQL first narrowed by the name-bigram GIN index.

    Every two-character piece of ``q`` must be among the name's pieces (index lookup), then ILIKE
    confirms the exact substring. Single characters fall back to the plain scan.
    """
    contains: ColumnElement[bool] = column.ilike(f"%{escape_like(q)}%", escape="\\")
    if dialect != "postgresql" or len(q) < 2:
        return contains
    simple: ColumnElement[Any] = literal_column(
        "'simple'::regconfig"
    )  # a constant, so the index expression matches
    indexed = func.to_tsvector(simple, func.kehu_bigrams(cast(column, Text)))
    wanted = func.plainto_tsquery(simple, func.kehu_bigrams(q))
    return and_(indexed.op("@@")(wanted), contains)


def _search_condition(principal: Principal, q: str, dialect: str) -> ColumnElement[bool]:
    """Customers whose name, a phone (customer or contact) or a contact name contains ``q``.

    The matching ids are collected first, in a MATERIALIZED CTE of three index-friendly branches
    (name bigrams and phone trigrams on PostgreSQL), each inside the caller's scope. Fencing the
    search keeps the planner from walking the sort index and filtering every row to find a
    handful of matches (bench/RESULTS.md).
    """
    in_scope = (Customer.deleted_at.is_(None), access.readable(principal, Customer))
    branches = [
        select(Customer.id.label("id")).where(*in_scope, _name_contains(Customer.name, q, dialect)),
        select(Contact.customer_id.label("id"))
        .join(Customer, Customer.id == Contact.customer_id)
        .where(
            *in_scope,
            access.revealing(principal, "contact.name"),
            Contact.deleted_at.is_(None),
            _name_contains(Contact.name, q, dialect),
        ),
    ]
    digits = "".join(ch for ch in q if ch.isdigit())
    if len(digits) >= 3 and len(digits) >= len(
        q.replace(" ", "").replace("-", "").replace("+", "")
    ):
        branches.append(
            select(CustomerPhone.customer_id.label("id"))
            .join(Customer, Customer.id == CustomerPhone.customer_id)
            .where(
                *in_scope,
                # Phones the caller may not read (roles, or a pool that hides them, C5/J4)
                # are not searchable either.
                or_(
                    and_(CustomerPhone.contact_id.is_(None), access.revealing(principal, "phones")),
                    and_(
                        CustomerPhone.contact_id.is_not(None),
                        access.revealing(principal, "contact.phones"),
                    ),
                ),
                CustomerPhone.number.contains(digits),
            )
        )
    matches = union(*branches).cte("search_matches").prefix_with("MATERIALIZED")
    return Customer.id.in_(select(matches.c.id))


def _custom_condition(dialect: str, definition: Any, op: str, raw: str) -> ColumnElement[bool]:
    key = definition.key
    where = f"cf.{key}" + (f".{op}" if op != "eq" else "")
    try:
        if definition.type == "number":
            value: Any = float(raw)
            column: Any = Customer.custom_fields[key].as_float()
        elif definition.type == "date":
            value = config._coerce_value(definition, raw)
            column = Customer.custom_fields[key].as_string()
        else:
            if op != "eq":
                raise ValueError("only equality applies to this field")
            value = raw
            column = Customer.custom_fields[key].as_string()
            if (
                definition.type in ("single_select", "multi_select")
                and raw not in definition.options
            ):
                raise ValueError(f"expected one of: {', '.join(definition.options)}")
    except ValueError as exc:
        raise ValidationFailed(errors=[field_error(where, str(exc), where="query")]) from None
    if definition.type == "multi_select":
        if dialect == "postgresql":
            return type_coerce(Customer.custom_fields, JSONB).contains({key: [value]})
        each = func.json_each(Customer.custom_fields, f'$."{key}"').table_valued("value")
        return exists(select(literal_column("1")).select_from(each).where(each.c.value == value))
    condition: ColumnElement[bool] = (
        column >= value if op == "min" else column <= value if op == "max" else column == value
    )
    return condition


async def list_customers(
    session: AsyncSession, principal: Principal, query: CustomerQuery
) -> tuple[list[CustomerView], str | None]:
    limit = max(1, min(query.limit, MAX_LIMIT))
    conditions: list[ColumnElement[bool]] = [Customer.deleted_at.is_(None)]
    if query.pool_id is None:
        conditions += [Customer.pool_id.is_(None), access.readable_outside_pools(principal)]
    else:
        conditions += [Customer.pool_id == query.pool_id, access.readable(principal, Customer)]
    if query.q and query.q.strip():
        conditions.append(
            _search_condition(principal, query.q.strip(), session.get_bind().dialect.name)
        )
    column: Any
    for column, values in (
        (Customer.level, query.level),
        (Customer.industry, query.industry),
        (Customer.source, query.source),
        (Customer.province, query.province),
        (Customer.city, query.city),
    ):
        if values:
            conditions.append(column.in_(values))
    value: Any
    for column, value in (
        (Customer.kind, query.kind),
        (Customer.deal_status, query.deal_status),
        (Customer.gender, query.gender),
        (Customer.owner_id, query.owner_id),
    ):
        if value is not None:
            conditions.append(column == value)
    if query.department_id is not None:
        conditions.append(
            Customer.owner_id.in_(select(User.id).where(User.department_id == query.department_id))
        )
    for tag_id in dict.fromkeys(query.tag_id):
        conditions.append(
            exists().where(
                CustomerTag.customer_id == Customer.id,
                CustomerTag.tag_id == tag_id,
                CustomerTag.removed_at.is_(None),
            )
        )
    low: Any
    high: Any
    for column, low, high in (
        (Customer.created_at, query.created_from, query.created_to),
        (Customer.last_follow_up_at, query.last_follow_up_from, query.last_follow_up_to),
        (Customer.next_follow_up_at, query.next_follow_up_from, query.next_follow_up_to),
    ):
        if low is not None:
            conditions.append(column >= low)
        if high is not None:
            conditions.append(column < high)
    if query.custom:
        definitions = await config.custom_field_map(session)
        dialect = session.get_bind().dialect.name
        for param, raw in query.custom.items():
            key, _, op = param.partition(".")
            op = op or "eq"
            definition = definitions.get(key)
            if definition is None or op not in ("eq", "min", "max"):
                raise ValidationFailed(
                    errors=[
                        field_error(f"cf.{param}", "no such custom field filter", where="query")
                    ]
                )
            conditions.append(_custom_condition(dialect, definition, op, raw))

    sort_key = query.sort
    distance: ColumnElement[Any] | None = None
    if query.near is not None:
        lat0, lng0 = query.near
        radius = query.radius_km
        km_per_lng = KM_PER_DEG_LNG_EQUATOR * max(math.cos(math.radians(lat0)), 0.01)
        dlat, dlng = radius / KM_PER_DEG_LAT, radius / km_per_lng
        # Equirectangular distance² in km²: exact enough within a city-sized radius, and plain
        # arithmetic that both SQLite and PostgreSQL evaluate (no trigonometry in SQL).
        dy = (Customer.lat - lat0) * KM_PER_DEG_LAT
        dx = (Customer.lng - lng0) * km_per_lng
        distance = dy * dy + dx * dx
        conditions += [
            access.revealing(principal, "location"),
            Customer.lat.between(lat0 - dlat, lat0 + dlat),
            Customer.lng.between(lng0 - dlng, lng0 + dlng),
            distance <= radius * radius,
        ]
    if sort_key is None:
        sort_key = "distance" if distance is not None else "-created_at"

    descending = sort_key.startswith("-")
    if sort_key == "distance" and distance is not None:
        sort_expr, nullable = distance, False
    else:
        sort_expr, nullable = SORTS[sort_key.lstrip("-")]
    cursor = decode_cursor(query.cursor)
    if cursor is not None:
        conditions.append(
            keyset_after(sort_expr, Customer.id, cursor, descending=descending, nullable=nullable)
        )

    stmt = (
        select(Customer, Owner.display_name, sort_expr.label("sort_value"))
        .outerjoin(Owner, Owner.id == Customer.owner_id)
        .where(*conditions)
        .order_by(*order_by(sort_expr, Customer.id, descending=descending, nullable=nullable))
        .limit(limit + 1)
    )
    rows = (await session.execute(stmt)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].sort_value, rows[-1][0].id) if more and rows else None
    distances = None
    if query.near is not None:
        distances = {
            c.id: round(haversine_km(query.near, (c.lat, c.lng)), 3)
            for c, *_ in rows
            if c.lat is not None
        }
    views = await _views(session, principal, [(c, name) for c, name, _ in rows], distances)
    return views, next_cursor


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lng1, lat2, lng2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    )
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


async def facets(session: AsyncSession, principal: Principal) -> dict[str, list[str]]:
    """Distinct values present in the caller's customers, for filter pickers."""
    base = [Customer.deleted_at.is_(None), access.readable(principal, Customer)]
    result: dict[str, list[str]] = {}
    for key, column in (
        ("industries", Customer.industry),
        ("sources", Customer.source),
        ("provinces", Customer.province),
        ("cities", Customer.city),
        ("levels", Customer.level),
    ):
        values = await session.scalars(
            select(column).where(*base, column.is_not(None)).distinct().order_by(column).limit(500)
        )
        result[key] = [v for v in values.all() if v is not None]
    return result


# --- duplicates --------------------------------------------------------------------------------


async def find_duplicates(
    session: AsyncSession,
    principal: Principal,
    *,
    name: str | None,
    phones: Sequence[str] = (),
    email: str | None = None,
    exclude_id: int | None = None,
) -> list[dict[str, Any]]:
    """Customers that look like the one described: same phone (customer or contact phones), same
    e-mail, or a name whose normalised form is equal or very similar (≥ 0.8). Searched across
    owned, pool and recycle-bin customers; matches outside the caller's scope are masked.
    """
    numbers = [n for n in (normalize_phone(p) for p in phones) if n]
    email_n = normalize_email(email)
    name_n = normalize_name(name) if name and name.strip() else None
    matched: dict[int, dict[str, Any]] = {}

    def hit(customer_id: int, reason: str, similarity: float = 1.0) -> None:
        entry = matched.setdefault(customer_id, {"matched_on": [], "similarity": 0.0})
        if reason not in entry["matched_on"]:
            entry["matched_on"].append(reason)
        entry["similarity"] = max(entry["similarity"], similarity)

    if numbers:
        for cid in (
            await session.scalars(
                select(CustomerPhone.customer_id)
                .where(CustomerPhone.number.in_(numbers))
                .distinct()
            )
        ).all():
            hit(cid, "phone")
    if email_n:
        for cid in (
            await session.scalars(select(Customer.id).where(Customer.email_normalized == email_n))
        ).all():
            hit(cid, "email")
    if name_n:
        prefix = escape_like(name_n[:2])
        candidates = await session.execute(
            select(Customer.id, Customer.name_normalized)
            .where(
                or_(
                    Customer.name_normalized == name_n,
                    Customer.name_normalized.like(f"{prefix}%", escape="\\"),
                )
            )
            .limit(NAME_CANDIDATES)
        )
        for cid, other in candidates.all():
            if other == name_n:
                hit(cid, "name")
            elif min(len(other), len(name_n)) >= 4:
                score = name_similarity(name_n, other)
                if score >= NAME_SIMILARITY_THRESHOLD:
                    hit(cid, "name", score)
    if exclude_id is not None:
        matched.pop(exclude_id, None)
    if not matched:
        return []
    ranked = sorted(
        matched,
        key=lambda cid: (-len(matched[cid]["matched_on"]), -matched[cid]["similarity"], cid),
    )
    ranked = ranked[:MAX_DUPLICATE_MATCHES]
    rows = (
        await session.execute(
            select(Customer, User.display_name)
            .outerjoin(User, User.id == Customer.owner_id)
            .where(Customer.id.in_(ranked))
        )
    ).all()
    visible = await access.readable_ids(session, principal, Customer, ranked)
    by_id = {c.id: (c, owner) for c, owner in rows}
    out = []
    for cid in ranked:
        customer, owner_name = by_id[cid]
        seen = cid in visible and customer.deleted_at is None
        hidden = access.hidden_fields(principal, customer.pool_id)
        # A match only through a value the caller may not read (roles, pool) does not show
        # which customer it is: like a match outside the scope (SPEC J4, C5).
        readable_reasons = {
            reason
            for reason, name in (("phone", "phones"), ("email", "email"), ("name", None))
            if name is None
            or (
                name not in hidden and access.at_least(principal.field_level(name), FieldLevel.READ)
            )
        }
        seen = seen and bool(readable_reasons.intersection(matched[cid]["matched_on"]))
        # Matches outside the scope, or whose pool hides the field, show it masked (enough to
        # recognise the duplicate); what the caller's roles hide stays hidden.
        levels = {
            name: access.most_restrictive(principal.field_level(name), FieldLevel.MASKED)
            if not seen or name in hidden
            else principal.field_level(name)
            for name in ("phones", "email")
        }
        match = {
            "id": cid if seen else None,
            "name": customer.name if seen else mask_name(customer.name),
            "owner_name": owner_name,
            "matched_on": matched[cid]["matched_on"],
            "similarity": round(matched[cid]["similarity"], 3),
            "visible": seen,
            "in_recycle_bin": customer.deleted_at is not None,
            "phones": customer.phones,
            "email": customer.email,
        }
        out.append(access.withhold(match, levels, access.CUSTOMER_KEYS))
    return out


# --- writing -----------------------------------------------------------------------------------


async def _replace_phone_index(
    session: AsyncSession, customer_id: int, phones: Sequence[str]
) -> None:
    await session.execute(
        delete(CustomerPhone).where(
            CustomerPhone.customer_id == customer_id, CustomerPhone.contact_id.is_(None)
        )
    )
    session.add_all(CustomerPhone(customer_id=customer_id, number=n) for n in phones)


async def set_tags(
    session: AsyncSession, principal: Principal, customer: Customer, tag_ids: Sequence[int]
) -> None:
    """Make the current tags exactly ``tag_ids``; history rows are closed, never deleted."""
    wanted = list(dict.fromkeys(tag_ids))
    known = await config.tags_by_id(session, wanted)
    missing = [t for t in wanted if t not in known]
    if missing:
        raise ValidationFailed(errors=[field_error("tag_ids", f"no such tags: {missing}")])
    per_group: dict[int, list[str]] = {}
    for tag, group in known.values():
        if group.exclusive:
            per_group.setdefault(group.id, []).append(tag.name)
    crowded = {g: names for g, names in per_group.items() if len(names) > 1}
    if crowded:
        raise ValidationFailed(
            errors=[
                field_error("tag_ids", f"only one tag allowed from an exclusive group: {sorted(v)}")
                for v in crowded.values()
            ]
        )
    current = {
        row.tag_id: row
        for row in (
            await session.scalars(
                select(CustomerTag).where(
                    CustomerTag.customer_id == customer.id, CustomerTag.removed_at.is_(None)
                )
            )
        ).all()
    }
    now = utcnow()
    removed = [t for t in current if t not in wanted]
    added = [t for t in wanted if t not in current]
    if removed:
        await session.execute(
            update(CustomerTag)
            .where(CustomerTag.id.in_([current[t].id for t in removed]))
            .values(removed_at=now, removed_by_id=principal.user_id)
        )
        names = await config.tags_by_id(session, removed)
        for t in removed:
            tag, group = names[t]
            audit.customer_event(
                session,
                principal.user_id,
                customer.id,
                "tag_removed",
                {"tag": {"before": f"{group.name}/{tag.name}", "after": None}},
            )
    for t in added:
        tag, group = known[t]
        session.add(
            CustomerTag(
                customer_id=customer.id, tag_id=t, added_at=now, added_by_id=principal.user_id
            )
        )
        audit.customer_event(
            session,
            principal.user_id,
            customer.id,
            "tag_added",
            {"tag": {"before": None, "after": f"{group.name}/{tag.name}"}},
        )


async def _check_owner(session: AsyncSession, principal: Principal, owner_id: int) -> None:
    """A caller may hand a new customer only to an active user inside their own data scope."""
    if owner_id == principal.user_id:
        return
    allowed = await session.scalar(
        select(User.id).where(
            User.id == owner_id,
            User.is_active.is_(True),
            access.owner_in_scope(principal, "customer", User.id),
        )
    )
    if allowed is None:
        raise ValidationFailed(errors=[field_error("owner_id", "no such user in your data scope")])


async def create_customer(
    session: AsyncSession, principal: Principal, data: CustomerCreate
) -> CustomerView:
    if not principal.can("customer.create"):
        raise Forbidden("requires permission customer.create")
    owner_id = data.owner_id if data.owner_id is not None else principal.user_id
    given = [k for k in data.model_fields_set if getattr(data, k) not in (None, "", [])]
    access.check_editable(principal, None, access.personal_fields_in(given, access.CUSTOMER_KEYS))
    await _check_owner(session, principal, owner_id)
    custom = config.validate_custom_values(
        await config.custom_field_map(session), data.custom_fields
    )
    if not data.confirm_duplicate:
        matches = await find_duplicates(
            session, principal, name=data.name, phones=data.phones, email=data.email
        )
        if matches:
            raise DuplicateCustomer(
                f"{len(matches)} existing customer(s) look like this one; "
                "send confirm_duplicate: true to create it anyway",
                duplicates=matches,
            )
    now = utcnow()
    fields = data.model_dump(exclude={"tag_ids", "custom_fields", "confirm_duplicate", "owner_id"})
    customer = Customer(
        **fields,
        name_normalized=normalize_name(data.name),
        email_normalized=normalize_email(data.email),
        custom_fields=custom,
        owner_id=owner_id,
        owner_assigned_at=now,
        created_by_id=principal.user_id,
        deal_status="none",
    )
    session.add(customer)
    await session.flush()
    await _replace_phone_index(session, customer.id, customer.phones)
    await ownership.record(
        session,
        [ownership.Change(customer.id, "created", None, owner_id)],
        actor_id=principal.user_id,
        at=now,
    )
    audit.customer_event(
        session,
        principal.user_id,
        customer.id,
        "created",
        audit.diff({}, audit.snapshot(customer, AUDITED_FIELDS)),
    )
    if data.tag_ids:
        await set_tags(session, principal, customer, data.tag_ids)
    await session.flush()
    return await view_of(session, customer, principal)


async def update_customer(
    session: AsyncSession,
    principal: Principal,
    customer_id: int,
    version: int,
    data: CustomerUpdate,
) -> CustomerView:
    customer = await access.get_writable(session, principal, Customer, customer_id)
    check_version(customer, version)
    changes = data.model_dump(exclude_unset=True)
    access.check_editable(
        principal, customer.pool_id, access.personal_fields_in(changes, access.CUSTOMER_KEYS)
    )
    before = audit.snapshot(customer, AUDITED_FIELDS)
    tag_ids = changes.pop("tag_ids", None)
    if "custom_fields" in changes:
        changes["custom_fields"] = config.validate_custom_values(
            await config.custom_field_map(session),
            changes["custom_fields"] or {},
            current=customer.custom_fields,
        )
    for key, value in changes.items():
        setattr(customer, key, value)
    if "name" in changes:
        customer.name_normalized = normalize_name(customer.name)
    if "email" in changes:
        customer.email_normalized = normalize_email(customer.email)
    if "phones" in changes:
        await _replace_phone_index(session, customer.id, customer.phones)
    after = audit.snapshot(customer, AUDITED_FIELDS)
    field_changes = audit.diff(before, after)
    if tag_ids is not None:
        await set_tags(session, principal, customer, tag_ids)
    if field_changes:
        audit.customer_event(session, principal.user_id, customer.id, "updated", field_changes)
    if field_changes or tag_ids is not None:
        customer.updated_at = utcnow()  # also bumps the version: tags are part of the record
    if field_changes:
        await _notify_change(session, principal, customer, field_changes)
    await flush_versioned(session)
    return await view_of(session, customer, principal)


async def _notify_change(
    session: AsyncSession, principal: Principal, customer: Customer, changes: dict[str, Any]
) -> None:
    """B6: when someone other than the owner edits a customer, the owner and the team members
    hear about it (inbox and push), with the field-level diff."""
    now = utcnow()
    members = await session.scalars(
        select(CustomerTeamMember.user_id).where(
            CustomerTeamMember.customer_id == customer.id, access.unexpired_member(now)
        )
    )
    recipients = ({customer.owner_id} | set(members.all())) - {None, principal.user_id}
    if not recipients:
        return

    def shown(value: Any) -> str:
        return "—" if value in (None, "", [], {}) else str(value)

    def body(diff: dict[str, Any]) -> str:
        return "; ".join(
            f"{field}: {shown(c['before'])} → {shown(c['after'])}" for field, c in diff.items()
        )

    # Each recipient gets the diff as their roles let them read it (SPEC J4).
    levels = await access.users_field_levels(session, (r for r in recipients if r is not None))
    drafts = []
    for uid in sorted(r for r in recipients if r is not None):
        diff = redact_changes(changes, "customer", levels.get(uid, {}))
        drafts.append(
            notifications.Draft(
                user_id=uid,
                kind="customer_changed",
                title=f"{principal.display_name} 修改了客户 {customer.name}",
                body=body(diff),
                link=f"/customers/{customer.id}",
                data={"customer_id": customer.id, "actor_id": principal.user_id, "changes": diff},
            )
        )
    await notifications.deliver(session, drafts, now)


async def delete_customer(
    session: AsyncSession, principal: Principal, customer_id: int, version: int
) -> None:
    if not principal.can("customer.delete"):
        # Readable records say 403; others stay 404 (get_writable decides which).
        await access.get_readable(session, principal, Customer, customer_id)
        raise Forbidden("requires permission customer.delete")
    customer = await access.get_writable(session, principal, Customer, customer_id)
    check_version(customer, version)
    now = utcnow()
    customer.deleted_at = now
    customer.deleted_by_id = principal.user_id
    customer.recycle_kind = "deleted"
    customer.recycle_reason = None
    customer.locked_at = None
    audit.customer_event(
        session,
        principal.user_id,
        customer.id,
        "deleted",
        {"deleted_at": {"before": None, "after": now.isoformat()}},
    )
    await flush_versioned(session)


def redact_changes(
    changes: dict[str, Any],
    entity: str,
    levels: Mapping[str, FieldLevel],
    hidden: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """A timeline entry's changes without what the caller may not read: personal values below
    ``read`` (roles, pool) dropped or masked; a contact's entries while the pool hides contacts."""
    if entity == "contact" and "contacts" in hidden:
        return {}
    field_keys = {"customer": access.CUSTOMER_KEYS, "contact": access.CONTACT_KEYS}.get(entity)
    if field_keys is None or not levels:
        return changes
    result: dict[str, Any] = {}
    for key, change in changes.items():
        if not isinstance(change, dict) or not set(change) <= {"before", "after"}:
            result[key] = change
            continue
        shown = {
            side: access.withhold({key: value}, levels, field_keys)[key]
            for side, value in change.items()
        }
        if shown == change or any(v not in (None, [], "***") for v in shown.values()):
            result[key] = shown
    return result


async def timeline(
    session: AsyncSession, principal: Principal, customer_id: int, *, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    customer = await access.get_readable(session, principal, Customer, customer_id)
    hidden = access.hidden_fields(principal, customer.pool_id)
    levels = access.field_levels(principal, customer.pool_id)
    after = decode_cursor(cursor)
    limit = max(1, min(limit, MAX_LIMIT))
    events = await audit.customer_timeline(
        session, customer_id, before_id=after.id if after else None, limit=limit + 1
    )
    more = len(events) > limit
    events = events[:limit]
    items = [
        {
            "id": e.id,
            "at": e.at,
            "action": e.action,
            "entity": e.entity,
            "entity_id": e.entity_id,
            "changes": redact_changes(e.changes, e.entity, levels, hidden),
            "actor": {"id": e.actor_id, "display_name": name} if e.actor_id is not None else None,
        }
        for e, name in events
    ]
    next_cursor = encode_cursor(None, events[-1][0].id) if more else None
    return items, next_cursor
