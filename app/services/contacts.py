"""Contacts of a customer (SPEC B3). Access follows the customer's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import access
from app.access import FieldLevel, Principal
from app.models import Contact, Customer, CustomerPhone
from app.models.base import utcnow
from app.schemas.customer import ContactCreate, ContactUpdate
from app.services import audit
from app.services.versions import check_version, flush_versioned

AUDITED_FIELDS = ("name", "title", "phones", "email", "wechat", "is_primary", "birth_date", "notes")


async def _index_phones(session: AsyncSession, contact: Contact) -> None:
    await session.execute(delete(CustomerPhone).where(CustomerPhone.contact_id == contact.id))
    session.add_all(
        CustomerPhone(customer_id=contact.customer_id, contact_id=contact.id, number=n)
        for n in contact.phones
    )


def _withhold(
    session: AsyncSession, principal: Principal, pool_id: int | None, contacts: list[Contact]
) -> list[Contact]:
    """Empty or mask the contact fields the caller may not read — by its roles, or because the
    customer's pool hides them (C5, J4). The rows are detached first, so the blanks can never be
    written back."""
    levels = {
        name: level
        for name, level in access.field_levels(principal, pool_id).items()
        if name in access.CONTACT_KEYS and not access.at_least(level, FieldLevel.READ)
    }
    if not levels:
        return contacts
    for contact in contacts:
        if contact in session:
            session.expunge(contact)
        values = {
            key: getattr(contact, key) for keys in access.CONTACT_KEYS.values() for key in keys
        }
        for key, value in access.withhold(values, levels, access.CONTACT_KEYS).items():
            setattr(contact, key, value)
    return contacts


def _check_editable(principal: Principal, pool_id: int | None, keys: Sequence[str]) -> None:
    access.check_editable(principal, pool_id, access.personal_fields_in(keys, access.CONTACT_KEYS))


async def list_contacts(
    session: AsyncSession, principal: Principal, customer_id: int
) -> list[Contact]:
    """The customer's contacts (none while its pool hides contacts from the caller)."""
    customer = await access.get_readable(session, principal, Customer, customer_id)
    rows = await session.scalars(
        select(Contact)
        .where(
            Contact.customer_id == customer_id,
            Contact.deleted_at.is_(None),
            access.readable(principal, Contact),
        )
        .order_by(Contact.is_primary.desc(), Contact.id)
    )
    return _withhold(session, principal, customer.pool_id, list(rows.all()))


async def create_contact(
    session: AsyncSession, principal: Principal, customer_id: int, data: ContactCreate
) -> Contact:
    customer = await access.get_writable(session, principal, Customer, customer_id)
    _check_editable(
        principal,
        customer.pool_id,
        [k for k in data.model_fields_set if getattr(data, k) not in (None, "", [])],
    )
    contact = Contact(customer_id=customer_id, **data.model_dump())
    session.add(contact)
    await session.flush()
    await _index_phones(session, contact)
    audit.customer_event(
        session,
        principal.user_id,
        customer_id,
        "contact_created",
        audit.diff({}, audit.snapshot(contact, AUDITED_FIELDS)),
        entity="contact",
        entity_id=contact.id,
    )
    await session.flush()
    return _withhold(session, principal, customer.pool_id, [contact])[0]


async def get_contact(session: AsyncSession, principal: Principal, contact_id: int) -> Contact:
    contact = await access.get_readable(session, principal, Contact, contact_id)
    pool_id = await session.scalar(
        select(Customer.pool_id).where(Customer.id == contact.customer_id)
    )
    return _withhold(session, principal, pool_id, [contact])[0]


async def update_contact(
    session: AsyncSession, principal: Principal, contact_id: int, version: int, data: ContactUpdate
) -> Contact:
    contact = await access.get_writable(session, principal, Contact, contact_id)
    check_version(contact, version)
    pool_id = await session.scalar(
        select(Customer.pool_id).where(Customer.id == contact.customer_id)
    )
    changes: dict[str, Any] = data.model_dump(exclude_unset=True)
    _check_editable(principal, pool_id, list(changes))
    before = audit.snapshot(contact, AUDITED_FIELDS)
    for key, value in changes.items():
        setattr(contact, key, value)
    if "phones" in changes:
        await _index_phones(session, contact)
    field_changes = audit.diff(before, audit.snapshot(contact, AUDITED_FIELDS))
    if field_changes:
        audit.customer_event(
            session,
            principal.user_id,
            contact.customer_id,
            "contact_updated",
            field_changes,
            entity="contact",
            entity_id=contact.id,
        )
    await flush_versioned(session)
    return _withhold(session, principal, pool_id, [contact])[0]


async def delete_contact(
    session: AsyncSession, principal: Principal, contact_id: int, version: int
) -> None:
    contact = await access.get_writable(session, principal, Contact, contact_id)
    check_version(contact, version)
    now = utcnow()
    contact.deleted_at = now
    await session.execute(delete(CustomerPhone).where(CustomerPhone.contact_id == contact.id))
    audit.customer_event(
        session,
        principal.user_id,
        contact.customer_id,
        "contact_deleted",
        {"name": {"before": contact.name, "after": None}},
        entity="contact",
        entity_id=contact.id,
    )
    await flush_versioned(session)
