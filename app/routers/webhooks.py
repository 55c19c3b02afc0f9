"""Webhooks (SPEC J2): subscriptions, their delivery log, manual redelivery (integration admins)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Query, Response, status

from app.access import Principal
from app.deps import IfMatch, SessionDep, SessionMakerDep, SettingsDep, require
from app.routers.common import ETAG_HEADER, WITH_ETAG, ApiRouter, problems, set_etag
from app.schemas.webhook import (
    WebhookAttemptOut,
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryOut,
    WebhookOut,
    WebhookUpdate,
)
from app.services import webhooks as service

router = ApiRouter(tags=["integrations"])
Admin = Annotated[Principal, Depends(require("integration.manage"))]


def _created(subscription: object, secret: str) -> WebhookCreated:
    shown = WebhookOut.model_validate(subscription).model_dump()
    return WebhookCreated.model_validate({**shown, "secret": secret})


@router.get("/webhook-event-types", response_model=dict[str, str], responses=problems(403))
async def list_event_types(_: Admin) -> dict[str, str]:
    """The event types a subscription can choose, with what each reports."""
    return dict(service.EVENT_TYPES)


@router.get("/webhooks", response_model=list[WebhookOut], responses=problems(403))
async def list_webhooks(_: Admin, session: SessionDep) -> list[WebhookOut]:
    """Every subscription, oldest first (never the secret)."""
    return [WebhookOut.model_validate(s) for s in await service.list_subscriptions(session)]


@router.post(
    "/webhooks",
    response_model=WebhookCreated,
    status_code=status.HTTP_201_CREATED,
    responses={**problems(403), 201: {"headers": ETAG_HEADER}},
)
async def create_webhook(
    body: WebhookCreate,
    principal: Admin,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
) -> WebhookCreated:
    """Subscribe a URL to event types; the answer holds the signing secret, shown this once.
    Events that happen from now on are delivered; you are told if it gets disabled."""
    subscription, secret = await service.create_subscription(
        session, principal, settings, name=body.name, url=body.url, event_types=body.event_types
    )
    set_etag(response, subscription.version)
    response.headers["Location"] = f"/api/v1/webhooks/{subscription.id}"
    return _created(subscription, secret)


@router.get(
    "/webhooks/{webhook_id}",
    response_model=WebhookOut,
    responses={**problems(403, 404), **WITH_ETAG},
)
async def get_webhook(
    webhook_id: int, _: Admin, session: SessionDep, response: Response
) -> WebhookOut:
    """One subscription, with its run of failed deliveries."""
    subscription = await service.get_subscription(session, webhook_id)
    set_etag(response, subscription.version)
    return WebhookOut.model_validate(subscription)


@router.patch(
    "/webhooks/{webhook_id}",
    response_model=WebhookOut,
    responses={**problems(403, 404, 412, 428), **WITH_ETAG},
)
async def update_webhook(
    webhook_id: int,
    body: WebhookUpdate,
    _: Admin,
    version: IfMatch,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
) -> WebhookOut:
    """Change the URL, the event types or the name; `enabled: true` re-enables it."""
    subscription = await service.update_subscription(
        session, settings, webhook_id, version, body.model_dump(exclude_unset=True)
    )
    set_etag(response, subscription.version)
    return WebhookOut.model_validate(subscription)


@router.delete(
    "/webhooks/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(403, 404, 412, 428),
)
async def delete_webhook(webhook_id: int, _: Admin, version: IfMatch, session: SessionDep) -> None:
    """Remove the subscription with its delivery log."""
    await service.delete_subscription(session, webhook_id, version)


@router.post(
    "/webhooks/{webhook_id}/rotate-secret",
    response_model=WebhookCreated,
    responses=problems(403, 404),
)
async def rotate_webhook_secret(
    webhook_id: int, _: Admin, session: SessionDep, response: Response
) -> WebhookCreated:
    """A new signing secret (shown this once); the old one stops signing at once."""
    subscription, secret = await service.rotate_secret(session, webhook_id)
    set_etag(response, subscription.version)
    return _created(subscription, secret)


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=list[WebhookDeliveryOut],
    responses=problems(403, 404),
)
async def list_webhook_deliveries(
    webhook_id: int,
    _: Admin,
    session: SessionDep,
    delivery_status: Annotated[
        Literal["pending", "sending", "delivered", "failed"] | None, Query(alias="status")
    ] = None,
    before_id: Annotated[int | None, Query(description="Older than this delivery.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[WebhookDeliveryOut]:
    """The delivery log, newest first: each event's state and every attempt (status, latency,
    the start of the answer)."""
    rows = await service.list_deliveries(
        session, webhook_id, status=delivery_status, before_id=before_id, limit=limit
    )
    return [WebhookDeliveryOut.model_validate(r) for r in rows]


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
    response_model=WebhookAttemptOut,
    responses=problems(403, 404, 409),
)
async def redeliver_webhook(
    webhook_id: int,
    delivery_id: int,
    _: Admin,
    session: SessionDep,
    maker: SessionMakerDep,
    settings: SettingsDep,
) -> WebhookAttemptOut:
    """Send the event again now (same event id: receivers de-duplicate by it) and log the
    attempt; a success marks the delivery delivered."""
    await service.delivery_of(session, webhook_id, delivery_id)
    await session.commit()  # the attempt runs in its own transactions; hold no lock meanwhile
    return WebhookAttemptOut.model_validate(await service.redeliver(maker, settings, delivery_id))
