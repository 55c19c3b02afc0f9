"""Notification inbox with a live stream, notification settings, Web Push subscriptions."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Query, Request, Response, status
from fastapi.responses import StreamingResponse

from app.deps import CurrentPrincipal, SessionDep, SessionMakerDep
from app.routers.common import ApiRouter, problems
from app.schemas.common import Page
from app.schemas.notification import (
    MarkedRead,
    NotificationOut,
    NotificationSettingsIn,
    NotificationSettingsOut,
    PushSubscriptionIn,
    PushSubscriptionOut,
    UnreadCount,
    VapidPublicKey,
)
from app.services import inbox_signal
from app.services import notifications as service

router = ApiRouter(tags=["notifications"])

HEARTBEAT_SECONDS = 15.0


@router.get("/notifications", response_model=Page[NotificationOut], responses=problems())
async def list_notifications(
    principal: CurrentPrincipal,
    session: SessionDep,
    unread: bool | None = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[NotificationOut]:
    """Your notifications, newest first."""
    rows, next_cursor = await service.list_notifications(
        session, principal, unread=unread, cursor=cursor, limit=limit
    )
    return Page[NotificationOut](
        items=[NotificationOut.model_validate(n) for n in rows], next_cursor=next_cursor
    )


@router.get("/notifications/unread-count", response_model=UnreadCount, responses=problems())
async def unread_notification_count(
    principal: CurrentPrincipal, session: SessionDep
) -> UnreadCount:
    """How many of your notifications are unread."""
    return UnreadCount(count=await service.unread_count(session, principal.user_id))


@router.post(
    "/notifications/{notification_id}/read",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(404),
)
async def mark_notification_read(
    notification_id: int, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    """Mark one notification read."""
    await service.mark_read(session, principal, notification_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/notifications/read-all", response_model=MarkedRead, responses=problems())
async def mark_all_notifications_read(
    principal: CurrentPrincipal, session: SessionDep
) -> MarkedRead:
    """Mark all your notifications read."""
    return MarkedRead(updated=await service.mark_all_read(session, principal))


def _event(name: str, data: object) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


@router.get(
    "/notifications/stream",
    responses={
        **problems(),
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "SSE",
        },
    },
)
async def stream_notifications(
    request: Request,
    principal: CurrentPrincipal,
    maker: SessionMakerDep,
    max_seconds: Annotated[
        float, Query(gt=0, le=3600, description="Close the stream after this many seconds.")
    ] = 300,
) -> StreamingResponse:
    """Live notifications as Server-Sent Events (`notification` and `unread` events)."""
    user_id = principal.user_id
    async with maker() as session:
        last_id = await service.latest_notification_id(session, user_id)
        unread = await service.unread_count(session, user_id)

    async def events() -> AsyncIterator[str]:
        nonlocal last_id
        deadline = time.monotonic() + max_seconds
        last_beat = last_look = time.monotonic()
        yield "retry: 5000\n\n" + _event("unread", {"count": unread})
        with inbox_signal.HUB.subscribe(user_id) as wake:
            while time.monotonic() < deadline and not await request.is_disconnected():
                # Woken when this user's inbox gets news (any worker, ``inbox_signal``); the
                # timeout keeps heartbeats going and covers a wake-up lost in a reconnect.
                timeout = min(
                    inbox_signal.HUB.fallback_seconds,
                    HEARTBEAT_SECONDS,
                    max(0.0, deadline - time.monotonic()),
                )
                woken = await inbox_signal.HUB.wait(wake, timeout)
                fresh, count = [], None
                # Look when woken, and anyway every fallback period: news written where no
                # wake-up reaches (a separate process on SQLite) shows up late, never lost.
                if woken or time.monotonic() - last_look >= inbox_signal.HUB.fallback_seconds:
                    last_look = time.monotonic()
                    async with maker() as session:
                        fresh = await service.notifications_after(session, user_id, last_id)
                        count = await service.unread_count(session, user_id) if fresh else None
                for note in fresh:
                    last_id = note.id
                    yield _event(
                        "notification",
                        NotificationOut.model_validate(note).model_dump(mode="json"),
                    )
                if count is not None:
                    yield _event("unread", {"count": count})
                if time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                    last_beat = time.monotonic()
                    yield ": keep-alive\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/notification-settings", response_model=NotificationSettingsOut, responses=problems())
async def get_notification_settings(
    principal: CurrentPrincipal, session: SessionDep
) -> NotificationSettingsOut:
    """Your notification preferences."""
    return NotificationSettingsOut.model_validate(await service.get_settings(session, principal))


@router.put("/notification-settings", response_model=NotificationSettingsOut, responses=problems())
async def put_notification_settings(
    body: NotificationSettingsIn, principal: CurrentPrincipal, session: SessionDep
) -> NotificationSettingsOut:
    """Replace your notification preferences."""
    return NotificationSettingsOut.model_validate(
        await service.put_settings(session, principal, body)
    )


@router.get("/push/vapid-public-key", response_model=VapidPublicKey, responses=problems())
async def get_vapid_public_key(
    request: Request, _: CurrentPrincipal, maker: SessionMakerDep
) -> VapidPublicKey:
    """The application server key for `pushManager.subscribe`."""
    keys = await service.vapid_keys(maker, request.app.state.settings)
    return VapidPublicKey(public_key=keys.public_key)


@router.post(
    "/push/subscriptions",
    response_model=PushSubscriptionOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        **problems(),
        200: {"description": "Known endpoint, updated", "model": PushSubscriptionOut},
    },
)
async def create_push_subscription(
    request: Request,
    body: PushSubscriptionIn,
    principal: CurrentPrincipal,
    session: SessionDep,
    response: Response,
) -> PushSubscriptionOut:
    """Register this device for Web Push."""
    subscription, created = await service.subscribe(
        session, principal, body, request.app.state.settings
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return PushSubscriptionOut.model_validate(subscription)


@router.delete(
    "/push/subscriptions", status_code=status.HTTP_204_NO_CONTENT, responses=problems(404)
)
async def delete_push_subscription(
    principal: CurrentPrincipal,
    session: SessionDep,
    endpoint: Annotated[str, Query(max_length=1000)],
) -> Response:
    """Stop pushing to this device."""
    await service.unsubscribe(session, principal, endpoint)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
