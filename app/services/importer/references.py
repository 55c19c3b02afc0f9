"""Resolving what rows name — customers, owners, tags, products — in a few queries per file."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import access
from app.access import Principal
from app.db import chunks
from app.models import Customer, CustomerPhone, Product, Tag, TagGroup, User
from app.services.importer import bulk
from app.services.importer.plan import IN_CHUNK, RowPlan, note
from app.services.normalize import normalize_name


def writable_customer(principal: Principal) -> list[ColumnElement[bool]]:
    """Live customers the importer may change (contacts and orders are recorded on those)."""
    return [
        Customer.deleted_at.is_(None),
        access.readable(principal, Customer),
        access.writable(principal, Customer),
    ]


async def _lookup(
    session: AsyncSession,
    key_col: Any,
    id_col: Any,
    values: set[Any],
    *where: Any,
    join: Any = None,
) -> dict[Any, set[int]]:
    found: dict[Any, set[int]] = defaultdict(set)
    for chunk in chunks(sorted(values), IN_CHUNK):
        stmt = select(key_col, id_col).where(bulk.one_of(session, key_col, chunk), *where)
        if join is not None:
            stmt = stmt.join(*join)
        for value, record_id in (await session.execute(stmt.distinct())).all():
            found[value].add(record_id)
    return found


async def resolve_customers(
    session: AsyncSession,
    principal: Principal,
    plans: Sequence[RowPlan],
    columns: Mapping[str, int],
) -> None:
    """Set ``data["customer_id"]`` of each live row from its customer id, else phone, else
    name — among the live customers the importer may change; a row naming none, or several
    (by phone or name), fails."""
    live = [p for p in plans if p.action != "fail"]
    where = writable_customer(principal)
    ids = {p.row.values["customer_id"] for p in live if "customer_id" in p.row.values}
    phones = {
        p.row.values["customer_phone"]
        for p in live
        if "customer_id" not in p.row.values and "customer_phone" in p.row.values
    }
    names = {
        normalize_name(p.row.values["customer_name"])
        for p in live
        if not {"customer_id", "customer_phone"} & p.row.values.keys()
        and "customer_name" in p.row.values
    }
    by_id = await _lookup(session, Customer.id, Customer.id, ids, *where)
    by_phone = await _lookup(
        session,
        CustomerPhone.number,
        CustomerPhone.customer_id,
        phones,
        *where,
        join=(Customer, Customer.id == CustomerPhone.customer_id),
    )
    by_name = await _lookup(session, Customer.name_normalized, Customer.id, names, *where)
    for p in live:
        v = p.row.values
        if "customer_id" in v:
            key, found = "customer_id", by_id.get(v["customer_id"], set())
        elif "customer_phone" in v:
            key, found = "customer_phone", by_phone.get(v["customer_phone"], set())
        else:
            key, found = "customer_name", by_name.get(normalize_name(v["customer_name"]), set())
        if len(found) == 1:
            p.data["customer_id"] = next(iter(found))
        elif not found:
            p.fail(note(p, columns, key, "no such customer that you may change", "not_found"))
        else:
            p.fail(
                note(
                    p,
                    columns,
                    key,
                    f"{len(found)} customers you may change match; give the customer id",
                    "ambiguous",
                )
            )


async def resolve_owners(
    session: AsyncSession, principal: Principal, names: set[str]
) -> dict[str, int]:
    """Active users by username (or, failing that, by a display name only one of them has)
    whom the importer may give customers to: themselves and the users inside their data scope
    (as for ``owner_id`` on create). Names not in the answer are unknown or out of scope."""
    if not names:
        return {}
    allowed = [
        User.is_active.is_(True),
        or_(User.id == principal.user_id, access.owner_in_scope(principal, "customer", User.id)),
    ]
    by_username: dict[str, int] = {}
    by_display: dict[str, set[int]] = defaultdict(set)
    for chunk in chunks(sorted(names), IN_CHUNK // 2):
        rows = await session.execute(
            select(User.id, User.username, User.display_name).where(
                or_(User.username.in_(chunk), User.display_name.in_(chunk)), *allowed
            )
        )
        for user_id, username, display_name in rows.all():
            by_username[username] = user_id
            by_display[display_name].add(user_id)
    resolved: dict[str, int] = {}
    for name in names:
        if name in by_username:
            resolved[name] = by_username[name]
        elif len(by_display.get(name, ())) == 1:
            resolved[name] = next(iter(by_display[name]))
    return resolved


@dataclass(frozen=True, slots=True)
class TagInfo:
    id: int
    name: str
    group_id: int
    group_name: str
    exclusive: bool

    @property
    def label(self) -> str:
        return f"{self.group_name}/{self.name}"


async def tags_by_name(session: AsyncSession, names: set[str]) -> dict[str, list[TagInfo]]:
    """Every tag of each name (one name may exist in several groups)."""
    found: dict[str, list[TagInfo]] = defaultdict(list)
    for chunk in chunks(sorted(names), IN_CHUNK):
        rows = await session.execute(
            select(Tag.id, Tag.name, Tag.group_id, TagGroup.name, TagGroup.exclusive)
            .join(TagGroup, TagGroup.id == Tag.group_id)
            .where(Tag.name.in_(chunk))
            .order_by(Tag.id)
        )
        for tag_id, name, group_id, group_name, exclusive in rows.all():
            found[name].append(TagInfo(tag_id, name, group_id, group_name, bool(exclusive)))
    return found


async def products(
    session: AsyncSession, skus: set[str], names: set[str]
) -> tuple[dict[str, int], dict[str, list[int]]]:
    """Product ids by SKU (unique) and by name (possibly several)."""
    by_sku: dict[str, int] = {}
    by_name: dict[str, list[int]] = defaultdict(list)
    for chunk in chunks(sorted(skus), IN_CHUNK):
        found = await session.execute(select(Product.sku, Product.id).where(Product.sku.in_(chunk)))
        by_sku.update({sku: product_id for sku, product_id in found.all() if sku is not None})
    for chunk in chunks(sorted(names), IN_CHUNK):
        rows = await session.execute(
            select(Product.name, Product.id).where(Product.name.in_(chunk)).order_by(Product.id)
        )
        for name, product_id in rows.all():
            by_name[name].append(product_id)
    return by_sku, by_name
