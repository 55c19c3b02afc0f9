"""Inbox, settings, push subscriptions, and the reminder dispatcher (SPEC D3, D4, B6).

Delivery happens in two steps, each claiming rows atomically so any number of dispatcher runs
may race without doubling anything:

1. *Due reminders → notifications.* A conditional ``UPDATE reminders SET state = 'sent' ...
   WHERE state = 'pending' AND due_at <= now RETURNING ...`` claims a batch (``FOR UPDATE SKIP
   LOCKED`` on PostgreSQL); in the same transaction each claimed reminder becomes one inbox
   notification (``notifications.reminder_id`` is unique) and one push delivery row per device
   (``(notification_id, subscription_id)`` is unique). Reminders that fell due longer ago than the
   allowed lateness become ``missed``: an inbox entry saying so, no push.
2. *Push deliveries.* Due delivery rows are claimed the same way (``state = 'sending'``), pushed
   with Web Push outside any transaction, and their outcome recorded: delivered, gone (the
   subscription is deleted), retry with exponential backoff, or failed after the last attempt.
   A claim abandoned by a crashed process is retried after ``STALE_CLAIM``; the push ``Topic``
   is the notification id, so a push service collapses such a repeat if the first is undelivered.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import ColumnElement, and_, case, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.access import Principal
from app.config import Settings
from app.db import transaction
from app.errors import NotFound, ValidationFailed, field_error
from app.models import (
    Notification,
    NotificationSettings,
    PushDelivery,
    PushSubscription,
    Reminder,
    SystemSetting,
    User,
)
from app.models.base import utcnow
from app.schemas.notification import (
    NOTIFICATION_KINDS,
    NotificationSettingsIn,
    PushSubscriptionIn,
)
from app.services import inbox_signal, webpush
from app.services.pagination import MAX_LIMIT, decode_cursor, encode_cursor

log = logging.getLogger("kehu.notifications")

STALE_CLAIM = dt.timedelta(minutes=5)
# Push time-to-live per kind: how long a push service should keep trying a sleeping phone.
PUSH_TTL = {"visit_reminder": 2 * 3600, "digest": 6 * 3600}
DEFAULT_TTL = 24 * 3600
URGENCY: dict[str, Literal["very-low", "low", "normal", "high"]] = {
    "visit_reminder": "high",
    "missed_reminder": "low",
    "digest": "low",
}


# --- creating notifications ----------------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
    user_id: int
    kind: str
    title: str
    body: str
    link: str
    data: dict[str, Any]
    reminder_id: int | None = None
    push: bool = True


def _parse_hhmm(value: str) -> dt.time:
    hours, minutes = value.split(":")
    return dt.time(int(hours), int(minutes))


def quiet_until(
    now: dt.datetime, zone: ZoneInfo, start: str | None, end: str | None
) -> dt.datetime | None:
    """If ``now`` falls in the user's quiet hours, the UTC moment they end; else None."""
    if not start or not end or start == end:
        return None
    local = now.astimezone(zone)
    begin, finish = _parse_hhmm(start), _parse_hhmm(end)
    t = local.time()
    inside = begin <= t < finish if begin < finish else (t >= begin or t < finish)
    if not inside:
        return None
    end_day = local.date()
    if begin > finish and t >= begin:  # the quiet period runs past midnight
        end_day += dt.timedelta(days=1)
    ends = dt.datetime.combine(end_day, finish, tzinfo=zone)
    return ends.astimezone(dt.UTC)


async def _recipient_rules(
    session: AsyncSession, user_ids: Iterable[int]
) -> dict[int, tuple[NotificationSettings | None, ZoneInfo]]:
    ids = set(user_ids)
    zones: dict[int, ZoneInfo] = {}
    for uid, name in (
        await session.execute(select(User.id, User.timezone).where(User.id.in_(ids)))
    ).all():
        try:
            zones[uid] = ZoneInfo(name)
        except (KeyError, ValueError):
            zones[uid] = ZoneInfo("Asia/Shanghai")
    prefs = {
        s.user_id: s
        for s in (
            await session.scalars(
                select(NotificationSettings).where(NotificationSettings.user_id.in_(ids))
            )
        ).all()
    }
    return {uid: (prefs.get(uid), zones.get(uid, ZoneInfo("Asia/Shanghai"))) for uid in ids}


async def deliver(session: AsyncSession, drafts: Sequence[Draft], now: dt.datetime) -> list[int]:
    """Insert inbox notifications and their per-device push rows; returns the notification ids.

    Runs inside the caller's transaction, so a change and its notifications commit together.
    """
    if not drafts:
        return []
    unknown = {d.kind for d in drafts} - set(NOTIFICATION_KINDS)
    if unknown:  # every kind must be one users can mute (settings validate against the list)
        raise ValueError(f"unknown notification kinds: {sorted(unknown)}")
    result = await session.execute(
        insert(Notification).returning(Notification.id, sort_by_parameter_order=True),
        [
            {
                "user_id": d.user_id,
                "kind": d.kind,
                "title": d.title[:200],
                "body": d.body[:1000],
                "link": d.link,
                "data": d.data,
                "reminder_id": d.reminder_id,
                "created_at": now,
            }
            for d in drafts
        ],
    )
    ids = [row[0] for row in result.all()]
    await inbox_signal.announce(session, (d.user_id for d in drafts))
    pushing = [(nid, d) for nid, d in zip(ids, drafts, strict=True) if d.push]
    if pushing:
        rules = await _recipient_rules(session, {d.user_id for _, d in pushing})
        devices: dict[int, list[int]] = {}
        for sid, uid in (
            await session.execute(
                select(PushSubscription.id, PushSubscription.user_id).where(
                    PushSubscription.user_id.in_(set(rules))
                )
            )
        ).all():
            devices.setdefault(uid, []).append(sid)
        rows = []
        for nid, d in pushing:
            prefs, zone = rules[d.user_id]
            if prefs is not None and prefs.push_kinds.get(d.kind) is False:
                continue
            held = quiet_until(
                now, zone, prefs.quiet_start if prefs else None, prefs.quiet_end if prefs else None
            )
            for sid in devices.get(d.user_id, []):
                rows.append(
                    {
                        "notification_id": nid,
                        "subscription_id": sid,
                        "state": "pending",
                        "next_attempt_at": held or now,
                        "created_at": now,
                    }
                )
        if rows:
            await session.execute(insert(PushDelivery), rows)
    return ids


# --- the dispatcher ------------------------------------------------------------------------------


@dataclass
class DispatchStats:
    notified: int = 0
    missed: int = 0
    pushed: int = 0
    gone: int = 0
    retried: int = 0
    failed: int = 0


def _claim_ids(stmt: Any, dialect: str) -> Any:
    return stmt.with_for_update(skip_locked=True) if dialect == "postgresql" else stmt


async def materialize_due_reminders(
    maker: async_sessionmaker[AsyncSession],
    settings: Settings,
    now: dt.datetime,
    stats: DispatchStats,
) -> None:
    """Step 1: claim due reminders batch by batch and turn each into exactly one notification."""
    lateness = dt.timedelta(minutes=settings.reminder_max_lateness_minutes)
    while True:
        async with transaction(maker) as session:
            dialect = session.get_bind().dialect.name
            due = _claim_ids(
                select(Reminder.id)
                .where(Reminder.state == "pending", Reminder.due_at <= now)
                .order_by(Reminder.due_at, Reminder.id)
                .limit(settings.dispatch_batch_size),
                dialect,
            )
            claimed = (
                await session.execute(
                    update(Reminder)
                    .where(Reminder.id.in_(due), Reminder.state == "pending")
                    .values(
                        state=case((Reminder.due_at < now - lateness, "missed"), else_="sent"),
                        processed_at=now,
                    )
                    .returning(
                        Reminder.id,
                        Reminder.user_id,
                        Reminder.kind,
                        Reminder.state,
                        Reminder.title,
                        Reminder.body,
                        Reminder.link,
                        Reminder.data,
                        Reminder.due_at,
                    )
                    .execution_options(synchronize_session=False)
                )
            ).all()
            if not claimed:
                return
            drafts = []
            for rid, uid, kind, state, title, body, link, data, due_at in claimed:
                if state == "missed":
                    stats.missed += 1
                    drafts.append(
                        Draft(
                            uid,
                            "missed_reminder",
                            f"错过的提醒：{title}",
                            body,
                            link,
                            {**(data or {}), "original_kind": kind, "due_at": due_at.isoformat()},
                            reminder_id=rid,
                            push=False,
                        )
                    )
                else:
                    stats.notified += 1
                    drafts.append(
                        Draft(uid, kind, title, body, link, dict(data or {}), reminder_id=rid)
                    )
            await deliver(session, drafts, now)
        if len(claimed) < settings.dispatch_batch_size:
            return


async def _claim_deliveries(
    maker: async_sessionmaker[AsyncSession], settings: Settings, now: dt.datetime
) -> list[tuple[int, int, int | None, int]]:
    async with transaction(maker) as session:
        dialect = session.get_bind().dialect.name
        ready: ColumnElement[bool] = or_(
            and_(PushDelivery.state.in_(("pending", "retry")), PushDelivery.next_attempt_at <= now),
            and_(PushDelivery.state == "sending", PushDelivery.claimed_at < now - STALE_CLAIM),
        )
        due = _claim_ids(
            select(PushDelivery.id)
            .where(ready)
            .order_by(PushDelivery.next_attempt_at)
            .limit(settings.dispatch_batch_size),
            dialect,
        )
        rows = (
            await session.execute(
                update(PushDelivery)
                .where(PushDelivery.id.in_(due), ready)
                .values(state="sending", claimed_at=now, attempts=PushDelivery.attempts + 1)
                .returning(
                    PushDelivery.id,
                    PushDelivery.notification_id,
                    PushDelivery.subscription_id,
                    PushDelivery.attempts,
                )
                .execution_options(synchronize_session=False)
            )
        ).all()
        return [(r[0], r[1], r[2], r[3]) for r in rows]


async def _push_one(
    client: httpx.AsyncClient,
    keys: webpush.VapidKeys,
    settings: Settings,
    limiter: asyncio.Semaphore,
    notes: dict[int, Notification],
    subs: dict[int, PushSubscription],
    item: tuple[int, int, int | None, int],
) -> tuple[int, int, int | None, webpush.PushResult | None]:
    """Push one claimed delivery; None when its subscription or notification is gone."""
    delivery_id, notification_id, subscription_id, attempts = item
    sub = subs.get(subscription_id) if subscription_id is not None else None
    note = notes.get(notification_id)
    if sub is None or note is None:
        return delivery_id, attempts, subscription_id, None
    payload = {
        "notification_id": note.id,
        "kind": note.kind,
        "title": note.title,
        "body": note.body,
        "link": note.link,
    }
    async with limiter:
        result = await webpush.send(
            client,
            keys,
            settings.vapid_subject,
            webpush.Subscription(sub.endpoint, sub.p256dh, sub.auth),
            payload,
            ttl=PUSH_TTL.get(note.kind, DEFAULT_TTL),
            urgency=URGENCY.get(note.kind, "normal"),
            topic=f"n{note.id}",
        )
    return delivery_id, attempts, subscription_id, result


async def push_due_deliveries(
    maker: async_sessionmaker[AsyncSession],
    settings: Settings,
    client: httpx.AsyncClient,
    keys: webpush.VapidKeys,
    now: dt.datetime,
    stats: DispatchStats,
) -> None:
    """Step 2: claim due push deliveries, send them concurrently, record each outcome."""
    while True:
        claimed = await _claim_deliveries(maker, settings, now)
        if not claimed:
            return
        async with maker() as session:
            notes = {
                n.id: n
                for n in (
                    await session.scalars(
                        select(Notification).where(Notification.id.in_({c[1] for c in claimed}))
                    )
                ).all()
            }
            subs = {
                s.id: s
                for s in (
                    await session.scalars(
                        select(PushSubscription).where(
                            PushSubscription.id.in_({c[2] for c in claimed if c[2] is not None})
                        )
                    )
                ).all()
            }
        limiter = asyncio.Semaphore(settings.push_concurrency)
        outcomes = await asyncio.gather(
            *(_push_one(client, keys, settings, limiter, notes, subs, item) for item in claimed)
        )
        finished = utcnow()
        async with transaction(maker) as session:
            gone_subscriptions: set[int] = set()
            for delivery_id, attempts, subscription_id, result in outcomes:
                values: dict[str, Any]
                if result is None:
                    values = {"state": "gone", "last_error": "subscription no longer exists"}
                    stats.gone += 1
                elif result.outcome == "delivered":
                    values = {
                        "state": "delivered",
                        "delivered_at": finished,
                        "last_status": result.status,
                    }
                    stats.pushed += 1
                elif result.outcome == "gone":
                    values = {"state": "gone", "last_status": result.status}
                    if subscription_id is not None:
                        gone_subscriptions.add(subscription_id)
                    stats.gone += 1
                elif result.outcome == "retry" and attempts < settings.push_max_attempts:
                    delay = webpush.backoff_delay(attempts, retry_after=result.retry_after)
                    values = {
                        "state": "retry",
                        "next_attempt_at": finished + dt.timedelta(seconds=delay),
                        "last_status": result.status,
                        "last_error": result.error,
                    }
                    stats.retried += 1
                else:
                    values = {
                        "state": "failed",
                        "last_status": result.status,
                        "last_error": result.error,
                    }
                    stats.failed += 1
                await session.execute(
                    update(PushDelivery)
                    .where(PushDelivery.id == delivery_id, PushDelivery.state == "sending")
                    .values(**values)
                )
            delivered_subs = {
                sid
                for _d, _a, sid, r in outcomes
                if r is not None and r.outcome == "delivered" and sid is not None
            }
            if delivered_subs:
                await session.execute(
                    update(PushSubscription)
                    .where(PushSubscription.id.in_(delivered_subs))
                    .values(last_success_at=finished)
                )
            if gone_subscriptions:
                # RFC 8030 §7.3: 404/410 mean the subscription is gone for good.
                await session.execute(
                    update(PushDelivery)
                    .where(
                        PushDelivery.subscription_id.in_(gone_subscriptions),
                        PushDelivery.state.in_(("pending", "retry")),
                    )
                    .values(state="gone", last_error="subscription expired")
                )
                await session.execute(
                    delete(PushSubscription).where(PushSubscription.id.in_(gone_subscriptions))
                )
        if len(claimed) < settings.dispatch_batch_size:
            return


async def dispatch(
    maker: async_sessionmaker[AsyncSession],
    settings: Settings,
    client: httpx.AsyncClient,
    *,
    now: dt.datetime | None = None,
) -> DispatchStats:
    """One dispatcher pass: due reminders to the inbox, then due pushes to devices."""
    now = now or utcnow()
    stats = DispatchStats()
    await materialize_due_reminders(maker, settings, now, stats)
    keys = await vapid_keys(maker, settings)
    await push_due_deliveries(maker, settings, client, keys, now, stats)
    if stats.notified or stats.missed or stats.pushed or stats.gone or stats.failed:
        log.info("dispatch", extra=vars(stats))
    return stats


async def vapid_keys(
    maker: async_sessionmaker[AsyncSession], settings: Settings
) -> webpush.VapidKeys:
    """The VAPID key pair: configured, or generated once and shared through the database."""
    if settings.vapid_private_key:
        return webpush.vapid_keys_from_pem(settings.vapid_private_key)
    async with maker() as session:
        stored = await session.get(SystemSetting, "vapid_private_pem")
        if stored is not None:
            return webpush.vapid_keys_from_pem(stored.value)
    try:
        async with transaction(maker) as session:
            session.add(
                SystemSetting(
                    key="vapid_private_pem", value=webpush.generate_vapid_keys().private_pem
                )
            )
    except IntegrityError:
        pass  # another process stored one first
    async with maker() as session:
        stored = await session.get(SystemSetting, "vapid_private_pem")
        assert stored is not None
        return webpush.vapid_keys_from_pem(stored.value)


# --- the inbox -----------------------------------------------------------------------------------


async def list_notifications(
    session: AsyncSession,
    principal: Principal,
    *,
    unread: bool | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Notification], str | None]:
    limit = max(1, min(limit, MAX_LIMIT))
    conditions: list[ColumnElement[bool]] = [Notification.user_id == principal.user_id]
    if unread is True:
        conditions.append(Notification.read_at.is_(None))
    elif unread is False:
        conditions.append(Notification.read_at.is_not(None))
    after = decode_cursor(cursor)
    if after is not None:
        conditions.append(Notification.id < after.id)
    rows = list(
        (
            await session.scalars(
                select(Notification)
                .where(*conditions)
                .order_by(Notification.id.desc())
                .limit(limit + 1)
            )
        ).all()
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(None, rows[-1].id) if more and rows else None


async def unread_count(session: AsyncSession, user_id: int) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        )
        or 0
    )


async def mark_read(session: AsyncSession, principal: Principal, notification_id: int) -> None:
    result = await session.execute(
        update(Notification)
        .where(Notification.id == notification_id, Notification.user_id == principal.user_id)
        .values(read_at=func.coalesce(Notification.read_at, utcnow()))
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"notification {notification_id} not found")


async def mark_all_read(session: AsyncSession, principal: Principal) -> int:
    result = await session.execute(
        update(Notification)
        .where(Notification.user_id == principal.user_id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def notifications_after(
    session: AsyncSession, user_id: int, after_id: int
) -> list[Notification]:
    """New inbox entries for the live stream, oldest first."""
    return list(
        (
            await session.scalars(
                select(Notification)
                .where(Notification.user_id == user_id, Notification.id > after_id)
                .order_by(Notification.id)
                .limit(100)
            )
        ).all()
    )


async def latest_notification_id(session: AsyncSession, user_id: int) -> int:
    return int(
        await session.scalar(
            select(func.max(Notification.id)).where(Notification.user_id == user_id)
        )
        or 0
    )


# --- settings and subscriptions ------------------------------------------------------------------


async def get_settings(session: AsyncSession, principal: Principal) -> dict[str, Any]:
    prefs = await session.get(NotificationSettings, principal.user_id)
    zone = await session.scalar(select(User.timezone).where(User.id == principal.user_id))
    return {
        "push_kinds": dict(prefs.push_kinds) if prefs else {},
        "quiet_hours": (
            {"start": prefs.quiet_start, "end": prefs.quiet_end}
            if prefs and prefs.quiet_start and prefs.quiet_end
            else None
        ),
        "digest_hour": prefs.digest_hour if prefs else 8,
        "timezone": zone or "Asia/Shanghai",
    }


async def put_settings(
    session: AsyncSession, principal: Principal, data: NotificationSettingsIn
) -> dict[str, Any]:
    prefs = await session.get(NotificationSettings, principal.user_id)
    if prefs is None:
        prefs = NotificationSettings(user_id=principal.user_id)
        session.add(prefs)
    prefs.push_kinds = dict(data.push_kinds)
    prefs.quiet_start = data.quiet_hours.start if data.quiet_hours else None
    prefs.quiet_end = data.quiet_hours.end if data.quiet_hours else None
    prefs.digest_hour = data.digest_hour
    await session.flush()
    return await get_settings(session, principal)


async def subscribe(
    session: AsyncSession, principal: Principal, data: PushSubscriptionIn, settings: Settings
) -> tuple[PushSubscription, bool]:
    """Register (or refresh) a device; returns it and whether it is new."""
    if not data.endpoint.startswith("https://") and not settings.push_allow_http:
        raise ValidationFailed(errors=[field_error("endpoint", "push endpoints are https URLs")])
    for name, value, size in (("p256dh", data.keys.p256dh, 65), ("auth", data.keys.auth, 16)):
        if len(_b64url_bytes(value)) != size:
            raise ValidationFailed(errors=[field_error(f"keys.{name}", f"expected {size} bytes")])
    existing = await session.scalar(
        select(PushSubscription).where(PushSubscription.endpoint == data.endpoint)
    )
    if existing is not None:
        # The same browser endpoint re-registered (possibly by another user on a shared phone).
        existing.user_id = principal.user_id
        existing.p256dh = data.keys.p256dh
        existing.auth = data.keys.auth
        existing.user_agent = data.user_agent
        await session.flush()
        return existing, False
    subscription = PushSubscription(
        user_id=principal.user_id,
        endpoint=data.endpoint,
        p256dh=data.keys.p256dh,
        auth=data.keys.auth,
        user_agent=data.user_agent,
    )
    session.add(subscription)
    await session.flush()
    return subscription, True


def _b64url_bytes(value: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (ValueError, binascii.Error):
        return b""


async def unsubscribe(session: AsyncSession, principal: Principal, endpoint: str) -> None:
    result = await session.execute(
        delete(PushSubscription).where(
            PushSubscription.endpoint == endpoint, PushSubscription.user_id == principal.user_id
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound("no such push subscription")
