"""Personal data (SPEC J4): field levels per role, export everything held about a customer, erase
(anonymise) it, and the log of exports and erasures.

The field levels themselves are enforced where records are shown and written (``app.access``:
``field_levels``, ``withhold``, ``revealing``, ``check_editable``); this module manages them.

Erasure anonymises in place and keeps the records that carry money and dates (orders,
opportunities, contracts, payments, tags, ownership history), so analytics stay right:

- customer: phones (and every number in the phone index, contacts' included), e-mail, address,
  location, birth date, notes, free-text (``text``) custom fields; a *person*'s name becomes
  ``已删除客户 #<id>`` (a company's name is no personal data and stays), as do gender, region,
  industry, source, level and the deal status;
- contacts (deleted ones too): name (``已删除联系人 #<id>``), phones, e-mail, WeChat, birth date,
  notes;
- follow-ups: the free text and the check-in address and coordinates (type, time, satisfaction
  stay); visits: the note;
- the timeline: every earlier entry of the customer has the erased values replaced by
  ``[erased]``; "customer changed" notifications lose their diff.

Webhook payloads already queued or delivered are system-level and stay as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, inspect, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import access
from app.access import FieldLevel, Principal
from app.db import transaction
from app.errors import NotFound
from app.models import (
    AuditEvent,
    Contact,
    Contract,
    Customer,
    CustomerPhone,
    CustomerTag,
    CustomerTeamMember,
    FollowUp,
    Notification,
    Opportunity,
    Order,
    OrderLine,
    OwnershipEvent,
    Payment,
    PersonalDataLog,
    Role,
    RoleFieldPermission,
    Tag,
    TagGroup,
    User,
    Visit,
)
from app.models.base import utcnow
from app.schemas.privacy import FieldPermissionsIn
from app.services import audit, config
from app.services.customers import redact_changes
from app.services.normalize import normalize_name
from app.services.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from app.services.versions import check_version, flush_versioned

ERASED = "[erased]"
# Columns never part of an export: derived search keys (they repeat the personal values).
_INTERNAL = frozenset({"name_normalized", "email_normalized", "version"})
# Timeline keys whose values an erasure scrubs, per entity.
_SCRUBBED_KEYS: Mapping[str, frozenset[str]] = {
    "customer": frozenset(
        key for keys in access.CUSTOMER_KEYS.values() for key in keys if key != "distance_km"
    ),
    "contact": frozenset(key for (key,) in access.CONTACT_KEYS.values()),
    "follow_up": frozenset({"content", "check_in_address", "check_in_lat", "check_in_lng"}),
    "visit": frozenset({"note"}),
}


# --- field levels per role ---------------------------------------------------------------------


async def _role(session: AsyncSession, role_id: int) -> Role:
    role = await session.get(Role, role_id)
    if role is None:
        raise NotFound(f"role {role_id} not found")
    return role


async def field_permissions(
    session: AsyncSession, role_id: int
) -> tuple[Role, dict[str, FieldLevel]]:
    """The role and its level of every personal field (``edit`` where nothing is configured)."""
    role = await _role(session, role_id)
    rows = await session.execute(
        select(RoleFieldPermission.field, RoleFieldPermission.level).where(
            RoleFieldPermission.role_id == role_id
        )
    )
    configured = {name: FieldLevel(level) for name, level in rows.all()}
    return role, {name: configured.get(name, FieldLevel.EDIT) for name in access.PERSONAL_FIELDS}


async def set_field_permissions(
    session: AsyncSession,
    principal: Principal,
    role_id: int,
    version: int,
    data: FieldPermissionsIn,
) -> tuple[Role, dict[str, FieldLevel]]:
    """Replace the role's field levels (fields left out: ``edit``); the role's version moves."""
    role, before = await field_permissions(session, role_id)
    check_version(role, version)
    await session.execute(delete(RoleFieldPermission).where(RoleFieldPermission.role_id == role_id))
    session.add_all(
        RoleFieldPermission(role_id=role_id, field=name, level=level.value)
        for name, level in data.fields.items()
        if level is not FieldLevel.EDIT
    )
    after = {name: data.fields.get(name, FieldLevel.EDIT) for name in access.PERSONAL_FIELDS}
    changes = audit.diff(
        {k: v.value for k, v in before.items()}, {k: v.value for k, v in after.items()}
    )
    if changes:
        role.updated_at = utcnow()  # bumps the version: the levels are part of the role
        audit.record_event(
            session,
            actor_id=principal.user_id,
            entity="role",
            entity_id=role_id,
            action="field_permissions_changed",
            changes=changes,
        )
    await flush_versioned(session)
    return role, after


# --- the log -----------------------------------------------------------------------------------


def log_entry(
    principal: Principal,
    action: str,
    *,
    customer_id: int | None = None,
    filters: Mapping[str, Any] | None = None,
    row_count: int | None = None,
    reason: str | None = None,
) -> PersonalDataLog:
    return PersonalDataLog(
        at=utcnow(),
        actor_id=principal.user_id,
        api_key_id=principal.api_key_id,
        action=action,
        customer_id=customer_id,
        filters=dict(filters or {}),
        row_count=row_count,
        reason=reason,
    )


async def log_apart(maker: async_sessionmaker[AsyncSession], entry: PersonalDataLog) -> int:
    """Write a log entry in a short transaction of its own (reads and streamed files, whose
    request transaction is read-only or already over); its id."""
    async with transaction(maker) as session:
        session.add(entry)
        await session.flush()
        return entry.id


async def finish_log(maker: async_sessionmaker[AsyncSession], entry_id: int, rows: int) -> None:
    """Record how many rows a finished export wrote."""
    async with transaction(maker) as session:
        await session.execute(
            update(PersonalDataLog).where(PersonalDataLog.id == entry_id).values(row_count=rows)
        )


async def list_log(
    session: AsyncSession,
    *,
    customer_id: int | None,
    action: str | None,
    actor_id: int | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """Log entries, newest first."""
    limit = max(1, min(limit, MAX_LIMIT))
    stmt = (
        select(PersonalDataLog, User.display_name)
        .outerjoin(User, User.id == PersonalDataLog.actor_id)
        .order_by(PersonalDataLog.id.desc())
        .limit(limit + 1)
    )
    for column, value in (
        (PersonalDataLog.customer_id, customer_id),
        (PersonalDataLog.action, action),
        (PersonalDataLog.actor_id, actor_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    after = decode_cursor(cursor)
    if after is not None:
        stmt = stmt.where(PersonalDataLog.id < after.id)
    rows = (await session.execute(stmt)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        {
            **{c: getattr(e, c) for c in _LOG_FIELDS},
            "actor": {"id": e.actor_id, "display_name": name} if e.actor_id is not None else None,
        }
        for e, name in rows
    ]
    return items, encode_cursor(None, rows[-1][0].id) if more else None


_LOG_FIELDS = ("id", "at", "api_key_id", "action", "customer_id", "filters", "row_count", "reason")


# --- export everything held about a customer ---------------------------------------------------


def _columns(record: Any) -> dict[str, Any]:
    """A row's columns as JSON-safe values (derived search keys left out)."""
    return {
        attr.key: audit.jsonable(getattr(record, attr.key))
        for attr in inspect(record).mapper.column_attrs
        if attr.key not in _INTERNAL
    }


async def _customer_for_request(
    session: AsyncSession, principal: Principal, customer_id: int
) -> Customer:
    """The customer if in the caller's scope — also from the recycle bin (its data is still
    held); NotFound otherwise."""
    customer = await session.scalar(
        select(Customer).where(Customer.id == customer_id, access.readable(principal, Customer))
    )
    if customer is None:
        raise NotFound(f"customer {customer_id} not found")
    return customer


async def _all(session: AsyncSession, stmt: Any) -> list[dict[str, Any]]:
    return [_columns(r) for r in (await session.scalars(stmt)).all()]


async def personal_data(
    session: AsyncSession, principal: Principal, customer_id: int
) -> dict[str, Any]:
    """Everything held about the customer and its contacts, as the caller's field levels (roles,
    pool) show it."""
    customer = await _customer_for_request(session, principal, customer_id)
    levels = access.field_levels(principal, customer.pool_id)
    hidden = access.hidden_fields(principal, customer.pool_id)
    contacts = []
    if "contacts" not in hidden:
        contacts = [
            access.withhold(row, levels, access.CONTACT_KEYS)
            for row in await _all(
                session,
                select(Contact).where(Contact.customer_id == customer_id).order_by(Contact.id),
            )
        ]
    tags = [
        {
            "tag_id": tag_id,
            "tag": name,
            "group": group,
            "added_at": audit.jsonable(added),
            "removed_at": audit.jsonable(removed),
        }
        for tag_id, name, group, added, removed in (
            await session.execute(
                select(
                    CustomerTag.tag_id,
                    Tag.name,
                    TagGroup.name,
                    CustomerTag.added_at,
                    CustomerTag.removed_at,
                )
                .join(Tag, Tag.id == CustomerTag.tag_id)
                .join(TagGroup, TagGroup.id == Tag.group_id)
                .where(CustomerTag.customer_id == customer_id)
                .order_by(CustomerTag.id)
            )
        ).all()
    ]
    contract_ids = select(Contract.id).where(Contract.customer_id == customer_id)
    orders = await _all(
        session, select(Order).where(Order.customer_id == customer_id).order_by(Order.id)
    )
    lines: dict[int, list[dict[str, Any]]] = {}
    for line in await _all(
        session,
        select(OrderLine)
        .where(OrderLine.order_id.in_([o["id"] for o in orders]))
        .order_by(OrderLine.id),
    ):
        lines.setdefault(line["order_id"], []).append(line)
    timeline = [
        {
            **_columns(event),
            "changes": redact_changes(event.changes, event.entity, levels, hidden),
        }
        for event in (
            await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.customer_id == customer_id)
                .order_by(AuditEvent.id)
            )
        ).all()
    ]
    return {
        "customer_id": customer_id,
        "exported_at": utcnow(),
        "customer": access.withhold(_columns(customer), levels, access.CUSTOMER_KEYS),
        "tags": tags,
        "team_members": await _all(
            session,
            select(CustomerTeamMember)
            .where(CustomerTeamMember.customer_id == customer_id)
            .order_by(CustomerTeamMember.id),
        ),
        "contacts": contacts,
        "follow_ups": await _all(
            session,
            select(FollowUp).where(FollowUp.customer_id == customer_id).order_by(FollowUp.id),
        ),
        "visits": await _all(
            session, select(Visit).where(Visit.customer_id == customer_id).order_by(Visit.id)
        ),
        "opportunities": await _all(
            session,
            select(Opportunity)
            .where(Opportunity.customer_id == customer_id)
            .order_by(Opportunity.id),
        ),
        "contracts": await _all(
            session,
            select(Contract).where(Contract.customer_id == customer_id).order_by(Contract.id),
        ),
        "payments": await _all(
            session,
            select(Payment).where(Payment.contract_id.in_(contract_ids)).order_by(Payment.id),
        ),
        "orders": [{**o, "lines": lines.get(o["id"], [])} for o in orders],
        "ownership_history": await _all(
            session,
            select(OwnershipEvent)
            .where(OwnershipEvent.customer_id == customer_id)
            .order_by(OwnershipEvent.id),
        ),
        "timeline": timeline,
    }


def record_count(data: Mapping[str, Any]) -> int:
    """How many records a personal-data export holds (the customer and every listed row)."""
    return 1 + sum(len(v) for v in data.values() if isinstance(v, list))


# --- erase -------------------------------------------------------------------------------------


def _blank(record: Any, names: Iterable[str], erased: list[str], prefix: str = "") -> None:
    """Empty each of ``names`` that holds something; note it in ``erased``."""
    for name in names:
        value = getattr(record, name)
        if value not in (None, "", []):
            setattr(record, name, [] if isinstance(value, list) else None)
            if prefix + name not in erased:
                erased.append(prefix + name)


def _scrub(changes: Mapping[str, Any], keys: frozenset[str], text_keys: Sequence[str]) -> Any:
    """An earlier timeline entry's changes with the erased values replaced."""
    result: dict[str, Any] = {}
    for key, change in changes.items():
        if not isinstance(change, dict) or not set(change) <= {"before", "after"}:
            result[key] = change
        elif key in keys:
            result[key] = {
                side: value if value in (None, "", []) else ERASED for side, value in change.items()
            }
        elif key == "custom_fields" and text_keys:
            result[key] = {
                side: {k: ERASED if k in text_keys else v for k, v in value.items()}
                if isinstance(value, dict)
                else value
                for side, value in change.items()
            }
        else:
            result[key] = change
    return result


async def erase(session: AsyncSession, principal: Principal, customer_id: int) -> dict[str, Any]:
    """Anonymise the customer's personal data (see the module docstring); safe to repeat. The
    reason goes to the personal-data log (the caller writes it), not to the timeline."""
    customer = await _customer_for_request(session, principal, customer_id)
    erased: list[str] = []
    person = customer.kind == "person"
    if person and customer.name != f"已删除客户 #{customer.id}":
        customer.name = f"已删除客户 #{customer.id}"
        customer.name_normalized = normalize_name(customer.name)
        erased.append("name")
    _blank(customer, ("phones", "email", "address", "lat", "lng", "birth_date", "notes"), erased)
    if {"lat", "lng"} & set(erased):
        erased[:] = [f for f in erased if f not in ("lat", "lng")] + ["location"]
    customer.email_normalized = None
    text_keys = [
        key for key, d in (await config.custom_field_map(session)).items() if d.type == "text"
    ]
    personal_custom = [k for k in text_keys if (customer.custom_fields or {}).get(k) is not None]
    if personal_custom:
        customer.custom_fields = {
            k: v for k, v in customer.custom_fields.items() if k not in personal_custom
        }
        erased += [f"custom_fields.{k}" for k in personal_custom]
    await session.execute(delete(CustomerPhone).where(CustomerPhone.customer_id == customer_id))

    records = int(bool(erased))
    contacts = 0
    for contact in (
        await session.scalars(select(Contact).where(Contact.customer_id == customer_id))
    ).all():
        if contact.name != f"已删除联系人 #{contact.id}":
            contact.name = f"已删除联系人 #{contact.id}"
            if "contact.name" not in erased:
                erased.append("contact.name")
        _blank(contact, ("phones", "email", "wechat", "birth_date", "notes"), erased, "contact.")
        contacts += session.is_modified(contact)
    for follow_up in (
        await session.scalars(
            select(FollowUp).where(
                FollowUp.customer_id == customer_id,
                or_(
                    FollowUp.content != ERASED,
                    FollowUp.check_in_address.is_not(None),
                    FollowUp.check_in_lat.is_not(None),
                ),
            )
        )
    ).all():
        records += 1
        follow_up.content = ERASED
        follow_up.check_in_address = None
        follow_up.check_in_lat = follow_up.check_in_lng = None
        if "follow_up.content" not in erased:
            erased.append("follow_up.content")
    for visit in (
        await session.scalars(
            select(Visit).where(Visit.customer_id == customer_id, Visit.note.is_not(None))
        )
    ).all():
        records += 1
        visit.note = None
        if "visit.note" not in erased:
            erased.append("visit.note")

    keys = dict(_SCRUBBED_KEYS)
    if person:
        keys["customer"] = keys["customer"] | {"name"}
    scrubbed = 0
    for event in (
        await session.scalars(select(AuditEvent).where(AuditEvent.customer_id == customer_id))
    ).all():
        entity_keys = keys.get(event.entity)
        if entity_keys is None:
            continue
        clean = _scrub(event.changes or {}, entity_keys, text_keys)
        if clean != event.changes:
            event.changes = clean
            scrubbed += 1
    await session.execute(
        update(Notification)
        .where(
            Notification.kind == "customer_changed",
            Notification.link == f"/customers/{customer_id}",
        )
        .values(body="个人信息已删除 (personal data erased)", data={"customer_id": customer_id})
    )
    if erased:
        customer.updated_at = utcnow()
        audit.customer_event(
            session,
            principal.user_id,
            customer_id,
            "erased",
            {"erased_fields": {"before": None, "after": sorted(erased)}},
        )
    await flush_versioned(session)
    return {
        "customer_id": customer_id,
        "erased_fields": sorted(erased),
        "contacts": contacts,
        "timeline_entries_scrubbed": scrubbed,
        "records": records + contacts,
    }
