"""Webhooks (SPEC J2): signed event deliveries to integrations, from an outbox.

**Events** are written in the transaction of the change they report — the outbox table
``webhook_events`` — by the two places every change of a customer already passes through: the
customer timeline (``audit``) and the ownership history (``ownership``), plus visit completion.
They are *thin*: ids, the action, the actor and the changed fields as the timeline records them;
a receiver reads anything else through the API with its key (and so within that key's scope).

**Delivery** (``dispatch``, a scheduler job in one process): events are fanned out to the
enabled subscriptions of their type, then each delivery is claimed, POSTed through the
SSRF-safe client (``outbound``: https only, every address checked on each attempt and redirect,
5 s, 64 KiB read) with ``Kehu-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``,
and its attempt logged. Failures are retried with exponential backoff and jitter for
``KEHU_WEBHOOK_RETRY_HOURS`` (24 h); a subscription whose deliveries fail
``KEHU_WEBHOOK_FAILURE_LIMIT`` times in a row is disabled and its owner notified.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
import random
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.access import Principal
from app.config import Settings
from app.db import transaction
from app.errors import Conflict, NotFound, ValidationFailed, field_error
from app.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)
from app.models.base import utcnow
from app.services import outbound
from app.services.versions import check_version, flush_versioned

log = logging.getLogger(__name__)

EVENT_TYPES: Mapping[str, str] = {
    "customer.created": "a customer was created (also by import)",
    "customer.updated": "a customer's fields changed",
    "customer.claimed": "a customer was claimed from a pool (or assigned from it)",
    "customer.reclaimed": "a customer went back to a pool for neglect",
    "customer.transferred": "a customer got another owner",
    "follow_up.logged": "a follow-up was logged",
    "visit.completed": "a visit was completed",
    "opportunity.stage_changed": "an opportunity moved to another open stage",
    "opportunity.won": "an opportunity was won",
    "opportunity.lost": "an opportunity was lost",
    "contract.status_changed": "a contract was submitted, approved, rejected, signed, voided...",
    "payment.received": "a payment on a contract was recorded",
    "import.finished": "an import job finished",
}
# Timeline entries (entity, action) that are webhook events.
_TIMELINE: Mapping[tuple[str, str], str] = {
    ("customer", "created"): "customer.created",
    ("customer", "updated"): "customer.updated",
    ("follow_up", "follow_up_logged"): "follow_up.logged",
    ("opportunity", "opportunity_stage_changed"): "opportunity.stage_changed",
    ("opportunity", "opportunity_won"): "opportunity.won",
    ("opportunity", "opportunity_lost"): "opportunity.lost",
    ("contract", "payment_received"): "payment.received",
    ("import", "import_run"): "import.finished",
    **{
        ("contract", f"contract_{a}"): "contract.status_changed"
        for a in ("submit", "approve", "reject", "sign", "void", "terminate", "complete")
    },
}
# Ownership history actions that are webhook events.
_OWNERSHIP: Mapping[str, str] = {
    "claimed": "customer.claimed",
    "assigned": "customer.claimed",
    "reclaimed": "customer.reclaimed",
    "transferred": "customer.transferred",
}
STALE_CLAIM = dt.timedelta(minutes=5)
SEND_CONCURRENCY = 10
BATCH = 200


# --- the outbox ----------------------------------------------------------------------------------


def event_row(type_: str, data: Mapping[str, Any], at: dt.datetime) -> dict[str, Any]:
    assert type_ in EVENT_TYPES, type_
    return {
        "event_id": str(uuid.uuid4()),
        "type": type_,
        "occurred_at": at,
        "data": dict(data),
        "dispatched": False,
    }


async def emit(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Write outbox rows (``event_row``) in the caller's transaction, in one statement."""
    if rows:
        await session.execute(insert(WebhookEvent), list(rows))


def emit_one(session: AsyncSession, type_: str, data: Mapping[str, Any]) -> None:
    """One event, added to the caller's session (flushed with the change it reports)."""
    session.add(WebhookEvent(**event_row(type_, data, utcnow())))


def from_timeline(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """The outbox row of a timeline entry (``audit``), or None if it is no webhook event."""
    type_ = _TIMELINE.get((row["entity"], row["action"]))
    if type_ is None:
        return None
    data = {
        "customer_id": row.get("customer_id"),
        row["entity"] + "_id": row["entity_id"],
        "action": row["action"],
        "actor_id": row.get("actor_id"),
        "changes": row.get("changes") or {},
    }
    return event_row(type_, data, row.get("at") or utcnow())


def ownership_event_type(action: str) -> str:
    """The event type of an ownership history action (``reclaimed`` -> ``customer.reclaimed``)."""
    return _OWNERSHIP[action]


def from_ownership(
    customer_id: int,
    action: str,
    from_owner_id: int | None,
    to_owner_id: int | None,
    pool_id: int | None,
    actor_id: int | None,
    at: dt.datetime,
) -> dict[str, Any] | None:
    type_ = _OWNERSHIP.get(action)
    if type_ is None:
        return None
    data = {
        "customer_id": customer_id,
        "action": action,
        "from_owner_id": from_owner_id,
        "to_owner_id": to_owner_id,
        "pool_id": pool_id,
        "actor_id": actor_id,
    }
    return event_row(type_, data, at)


# --- subscriptions -------------------------------------------------------------------------------


def _bad(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, errors=[field_error(field, message)])


def check_url(url: str, settings: Settings) -> str:
    """A URL deliveries may go to: https (http only by the development setting), a host that
    is no private, loopback or metadata address (names are checked again on every attempt)."""
    try:
        return str(
            outbound.validate_url(
                url,
                allow_http=settings.webhooks_allow_http,
                allow_private=settings.webhooks_allow_private,
            )
        )
    except outbound.OutboundError as exc:
        raise _bad("url", exc.message) from None


def check_types(types: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(types))
    unknown = [t for t in chosen if t not in EVENT_TYPES]
    if unknown or not chosen:
        raise _bad(
            "event_types",
            f"unknown event types {', '.join(unknown)}" if unknown else "choose at least one",
        )
    return chosen


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


async def get_subscription(session: AsyncSession, subscription_id: int) -> WebhookSubscription:
    found = await session.get(WebhookSubscription, subscription_id)
    if found is None:
        raise NotFound(f"webhook {subscription_id} not found")
    return found


async def list_subscriptions(session: AsyncSession) -> list[WebhookSubscription]:
    rows = await session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id))
    return list(rows.all())


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix>,v1=<hex>``: HMAC-SHA256 over ``"<t>." + body`` with the subscription's
    secret. Receivers recompute it and reject old timestamps (replays)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def body_of(event: WebhookEvent) -> bytes:
    payload = {
        "id": event.event_id,
        "type": event.type,
        "occurred_at": event.occurred_at.isoformat(),
        "data": event.data,
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


# --- dispatch ------------------------------------------------------------------------------------


@dataclass
class DispatchReport:
    fanned_out: int = 0
    delivered: int = 0
    failed_attempts: int = 0
    gave_up: int = 0
    disabled: int = 0


def backoff(attempts: int, rng: random.Random | None = None) -> dt.timedelta:
    """30 s × 2^(attempts − 1), at most an hour, times a jitter of 0.5–1.5."""
    base = min(30 * 2 ** max(0, attempts - 1), 3600)
    return dt.timedelta(seconds=base * (rng or random).uniform(0.5, 1.5))


async def fan_out(maker: async_sessionmaker[AsyncSession], now: dt.datetime) -> int:
    """Deliveries for the outbox's new events, one per enabled subscription of the type."""
    async with transaction(maker) as session:
        events = (
            await session.execute(
                select(WebhookEvent.id, WebhookEvent.type)
                .where(WebhookEvent.dispatched.is_(False))
                .order_by(WebhookEvent.id)
                .limit(5000)
            )
        ).all()
        if not events:
            return 0
        subscriptions = (
            await session.execute(
                select(WebhookSubscription.id, WebhookSubscription.event_types).where(
                    WebhookSubscription.enabled.is_(True)
                )
            )
        ).all()
        rows = [
            {
                "subscription_id": sid,
                "event_id": eid,
                "status": "pending",
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
            }
            for eid, type_ in events
            for sid, types in subscriptions
            if type_ in (types or [])
        ]
        if rows:
            await session.execute(insert(WebhookDelivery), rows)
        await session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id.in_([e[0] for e in events]))
            .values(dispatched=True)
            .execution_options(synchronize_session=False)
        )
        return len(rows)


async def _claim(maker: async_sessionmaker[AsyncSession], now: dt.datetime) -> list[int]:
    async with transaction(maker) as session:
        ready = or_(
            and_(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now),
            and_(
                WebhookDelivery.status == "sending", WebhookDelivery.claimed_at < now - STALE_CLAIM
            ),
        )
        due = select(WebhookDelivery.id).where(ready).order_by(WebhookDelivery.next_attempt_at)
        if session.get_bind().dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        rows = await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(due.limit(BATCH)), ready)
            .values(status="sending", claimed_at=now)
            .returning(WebhookDelivery.id)
            .execution_options(synchronize_session=False)
        )
        return [r[0] for r in rows.all()]


async def _send(
    delivery: WebhookDelivery,
    event: WebhookEvent,
    subscription: WebhookSubscription,
    settings: Settings,
) -> outbound.OutboundResult:
    body = body_of(event)
    timestamp = int(utcnow().timestamp())
    headers = {
        "Content-Type": "application/json",
        "Kehu-Event-Id": event.event_id,
        "Kehu-Event-Type": event.type,
        "Kehu-Delivery-Id": str(delivery.id),
        "Kehu-Signature": sign(subscription.secret, timestamp, body),
    }
    return await outbound.request(
        "POST",
        subscription.url,
        content=body,
        headers=headers,
        allow_http=settings.webhooks_allow_http,
        allow_private=settings.webhooks_allow_private,
        timeout=settings.webhook_timeout_seconds,
    )


async def _attempt(
    maker: async_sessionmaker[AsyncSession],
    settings: Settings,
    delivery_id: int,
    *,
    manual: bool,
    report: DispatchReport,
    now: dt.datetime | None = None,
) -> WebhookAttempt | None:
    """Send one delivery and record the attempt, the delivery's state and the subscription's
    run of failures (disabling it at the limit)."""
    async with transaction(maker) as session:
        found = (
            await session.execute(
                select(WebhookDelivery, WebhookEvent, WebhookSubscription)
                .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
                .join(
                    WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id
                )
                .where(WebhookDelivery.id == delivery_id)
            )
        ).first()
    if found is None:
        return None
    delivery, event, subscription = found
    result = await _send(delivery, event, subscription, settings)
    now = now or utcnow()  # the dispatcher's moment: its schedule is computed from it
    async with transaction(maker) as session:
        attempt = WebhookAttempt(
            delivery_id=delivery.id,
            attempted_at=now,
            manual=manual,
            status=result.status,
            latency_ms=round(result.elapsed_ms),
            error=(result.error or None) and str(result.error)[:300],
            response_excerpt=result.excerpt[:1024],
        )
        session.add(attempt)
        attempts = delivery.attempts + 1
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_attempt_at": now,
            "last_status": result.status,
            "last_error": attempt.error,
            "claimed_at": None,
        }
        if result.ok:
            values |= {"status": "delivered", "delivered_at": now, "next_attempt_at": None}
            report.delivered += 1
        elif manual:
            pass  # a failed manual try changes neither the schedule nor the run of failures
        elif now - delivery.created_at >= dt.timedelta(hours=settings.webhook_retry_hours):
            values |= {"status": "failed", "next_attempt_at": None}
            report.gave_up += 1
        else:
            values |= {"status": "pending", "next_attempt_at": now + backoff(attempts)}
        report.failed_attempts += 0 if result.ok else 1
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery.id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.ok or not manual:
            await _count_failure(
                session, subscription.id, ok=result.ok, settings=settings, report=report
            )
        await session.flush()
        return attempt


async def _count_failure(
    session: AsyncSession,
    subscription_id: int,
    *,
    ok: bool,
    settings: Settings,
    report: DispatchReport,
) -> None:
    from app.services import notifications  # the notifications module imports much

    if ok:
        await session.execute(
            update(WebhookSubscription)
            .where(WebhookSubscription.id == subscription_id)
            .values(consecutive_failures=0)
            .execution_options(synchronize_session=False)
        )
        return
    row = (
        await session.execute(
            update(WebhookSubscription)
            .where(WebhookSubscription.id == subscription_id)
            .values(consecutive_failures=WebhookSubscription.consecutive_failures + 1)
            .returning(
                WebhookSubscription.consecutive_failures,
                WebhookSubscription.enabled,
                WebhookSubscription.owner_id,
                WebhookSubscription.name,
            )
            .execution_options(synchronize_session=False)
        )
    ).one()
    failures, enabled, owner_id, name = row
    if not enabled or failures < settings.webhook_failure_limit:
        return
    now = utcnow()
    reason = f"{failures} deliveries in a row failed"
    await session.execute(
        update(WebhookSubscription)
        .where(WebhookSubscription.id == subscription_id)
        .values(enabled=False, disabled_at=now, disabled_reason=reason)
        .execution_options(synchronize_session=False)
    )
    report.disabled += 1
    log.warning("webhook %s disabled: %s", subscription_id, reason)
    if owner_id is not None:
        draft = notifications.Draft(
            user_id=owner_id,
            kind="webhook_disabled",
            title=f"Webhook「{name}」已停用",
            body=f"连续 {failures} 次投递失败，已自动停用。修复接收端后在集成设置中重新启用。",
            link=f"/integrations/webhooks/{subscription_id}",
            data={"webhook_id": subscription_id},
        )
        await notifications.deliver(session, [draft], now)


async def dispatch(
    maker: async_sessionmaker[AsyncSession], settings: Settings, now: dt.datetime | None = None
) -> DispatchReport:
    """One run of the dispatcher: fan out new events, send what is due (a few at once)."""
    now = now or utcnow()
    report = DispatchReport(fanned_out=await fan_out(maker, now))
    claimed = await _claim(maker, now)
    limit = asyncio.Semaphore(SEND_CONCURRENCY)

    async def one(delivery_id: int) -> None:
        async with limit:
            await _attempt(maker, settings, delivery_id, manual=False, report=report, now=now)

    await asyncio.gather(*(one(d) for d in claimed))
    return report


async def redeliver(
    maker: async_sessionmaker[AsyncSession], settings: Settings, delivery_id: int
) -> WebhookAttempt:
    """Send a delivery again now, whatever its state (a delivered one too), and log it."""
    async with transaction(maker) as session:
        delivery = await session.get(WebhookDelivery, delivery_id)
        if delivery is None:
            raise NotFound(f"delivery {delivery_id} not found")
        if delivery.status == "sending":
            raise Conflict("this delivery is being sent right now; look again in a moment")
    attempt = await _attempt(maker, settings, delivery_id, manual=True, report=DispatchReport())
    if attempt is None:
        raise NotFound(f"delivery {delivery_id} not found")
    return attempt


# --- managing subscriptions ----------------------------------------------------------------------


async def create_subscription(
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    *,
    name: str,
    url: str,
    event_types: Sequence[str],
) -> tuple[WebhookSubscription, str]:
    """A subscription and its signing secret (returned this once)."""
    secret = new_secret()
    subscription = WebhookSubscription(
        name=name,
        url=check_url(url, settings),
        event_types=check_types(event_types),
        secret=secret,
        enabled=True,
        owner_id=principal.user_id,
        consecutive_failures=0,
    )
    session.add(subscription)
    await session.flush()
    return subscription, secret


async def update_subscription(
    session: AsyncSession,
    settings: Settings,
    subscription_id: int,
    version: int,
    changes: Mapping[str, Any],
) -> WebhookSubscription:
    subscription = await get_subscription(session, subscription_id)
    check_version(subscription, version)
    if changes.get("url") is not None:
        subscription.url = check_url(changes["url"], settings)
    if changes.get("event_types") is not None:
        subscription.event_types = check_types(changes["event_types"])
    if changes.get("name") is not None:
        subscription.name = changes["name"]
    if changes.get("enabled") is not None:
        subscription.enabled = changes["enabled"]
        if changes["enabled"]:
            subscription.consecutive_failures = 0
            subscription.disabled_at = None
            subscription.disabled_reason = None
    await flush_versioned(session)
    return subscription


async def rotate_secret(
    session: AsyncSession, subscription_id: int
) -> tuple[WebhookSubscription, str]:
    subscription = await get_subscription(session, subscription_id)
    subscription.secret = secret = new_secret()
    await flush_versioned(session)
    return subscription, secret


async def delete_subscription(session: AsyncSession, subscription_id: int, version: int) -> None:
    subscription = await get_subscription(session, subscription_id)
    check_version(subscription, version)
    await session.delete(subscription)
    await session.flush()


async def list_deliveries(
    session: AsyncSession,
    subscription_id: int,
    *,
    status: str | None,
    before_id: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Deliveries of a subscription, newest first, each with its attempt log."""
    await get_subscription(session, subscription_id)
    stmt = (
        select(WebhookDelivery, WebhookEvent)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.subscription_id == subscription_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    if before_id is not None:
        stmt = stmt.where(WebhookDelivery.id < before_id)
    rows = (await session.execute(stmt)).all()
    attempts: dict[int, list[WebhookAttempt]] = {d.id: [] for d, _ in rows}
    if attempts:
        found = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(list(attempts)))
            .order_by(WebhookAttempt.id.desc())
        )
        for attempt in found:
            attempts[attempt.delivery_id].append(attempt)
    return [
        {
            "id": d.id,
            "event_id": e.event_id,
            "event_type": e.type,
            "occurred_at": e.occurred_at,
            "status": d.status,
            "attempts": d.attempts,
            "next_attempt_at": d.next_attempt_at,
            "last_attempt_at": d.last_attempt_at,
            "delivered_at": d.delivered_at,
            "last_status": d.last_status,
            "last_error": d.last_error,
            "log": attempts[d.id],
        }
        for d, e in rows
    ]


async def delivery_of(
    session: AsyncSession, subscription_id: int, delivery_id: int
) -> WebhookDelivery:
    delivery = await session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.subscription_id != subscription_id:
        raise NotFound(f"delivery {delivery_id} not found")
    return delivery
