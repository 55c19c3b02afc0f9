"""Audit trail: append-only change events and field-level diffs (SPEC A5)."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import AuditEvent, User, WebhookEvent
from app.services import webhooks


def jsonable(value: Any) -> Any:
    """A JSON-safe copy of a column value for the audit record."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def snapshot(record: Any, fields: Iterable[str]) -> dict[str, Any]:
    return {f: jsonable(getattr(record, f)) for f in fields}


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{field: {"before": x, "after": y}}`` for the fields whose value changed."""
    changes: dict[str, dict[str, Any]] = {}
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old != new:
            changes[key] = {"before": old, "after": new}
    return changes


def record_event(
    session: AsyncSession,
    *,
    actor_id: int | None,
    entity: str,
    entity_id: int,
    action: str,
    changes: Mapping[str, Any] | None = None,
    customer_id: int | None = None,
) -> AuditEvent:
    event = AuditEvent(
        actor_id=actor_id,
        entity=entity,
        entity_id=entity_id,
        customer_id=customer_id,
        action=action,
        changes=dict(changes or {}),
    )
    session.add(event)
    # The timeline is where changes pass: the ones integrations subscribe to go to the outbox.
    outbox = webhooks.from_timeline(
        {
            "actor_id": actor_id,
            "entity": entity,
            "entity_id": entity_id,
            "customer_id": customer_id,
            "action": action,
            "changes": jsonable(dict(changes or {})),
        }
    )
    if outbox is not None:
        session.add(WebhookEvent(**outbox))
    return event


def customer_event_row(
    actor_id: int | None,
    customer_id: int,
    action: str,
    changes: Mapping[str, Any],
    at: dt.datetime,
    *,
    entity: str = "customer",
    entity_id: int | None = None,
) -> dict[str, Any]:
    """One timeline row for ``record_rows`` (bulk changes write their events in one INSERT)."""
    return {
        "at": at,
        "actor_id": actor_id,
        "entity": entity,
        "entity_id": customer_id if entity_id is None else entity_id,
        "customer_id": customer_id,
        "action": action,
        "changes": dict(changes),
    }


async def record_rows(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert timeline rows made by ``customer_event_row`` in one statement."""
    if rows:
        await session.execute(insert(AuditEvent), list(rows))
        await webhooks.emit(session, [e for r in rows if (e := webhooks.from_timeline(r))])


def customer_event(
    session: AsyncSession,
    actor_id: int | None,
    customer_id: int,
    action: str,
    changes: Mapping[str, Any] | None = None,
    *,
    entity: str = "customer",
    entity_id: int | None = None,
) -> AuditEvent:
    """An event on a customer's timeline (about the customer itself unless ``entity`` says)."""
    return record_event(
        session,
        actor_id=actor_id,
        entity=entity,
        entity_id=customer_id if entity_id is None else entity_id,
        customer_id=customer_id,
        action=action,
        changes=changes,
    )


async def customer_timeline(
    session: AsyncSession, customer_id: int, *, before_id: int | None, limit: int
) -> list[tuple[AuditEvent, str | None]]:
    """Events for one customer, newest first, with the actor's display name."""
    stmt = (
        select(AuditEvent, User.display_name)
        .outerjoin(User, User.id == AuditEvent.actor_id)
        .where(AuditEvent.customer_id == customer_id)
        .order_by(AuditEvent.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        stmt = stmt.where(AuditEvent.id < before_id)
    return [(event, name) for event, name in (await session.execute(stmt)).all()]
