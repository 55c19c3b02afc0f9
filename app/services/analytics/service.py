"""The analyses as the API calls them: resolve the caller's scope, get the frames, compute off
the event loop."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.access import Principal, customer_scope
from app.models import CustomFieldDefinition, TagGroup
from app.models.base import utcnow
from app.services.analytics.common import (
    FIELD_DIMENSIONS,
    Catalog,
    Window,
    age_band_labels,
    frames_for,
    window,
)
from app.services.analytics.frames import AnalyticsStore

Compute = Callable[..., Any]


async def catalog(session: AsyncSession) -> Catalog:
    groups = (await session.execute(select(TagGroup.id, TagGroup.name))).all()
    fields = (
        await session.execute(
            select(
                CustomFieldDefinition.key, CustomFieldDefinition.label, CustomFieldDefinition.type
            ).where(CustomFieldDefinition.entity == "customer")
        )
    ).all()
    return Catalog(
        tag_groups={gid: name for gid, name in groups},
        custom_fields={key: (label, type_) for key, label, type_ in fields},
    )


async def dimensions(session: AsyncSession) -> list[dict[str, Any]]:
    """Every dimension a persona or segment can use."""
    cat = await catalog(session)
    result = [{"key": k, "label": v, "kind": "field"} for k, v in FIELD_DIMENSIONS.items()]
    result.append({"key": "age_band", "label": "年龄段", "kind": "age_band"})
    result += [
        {"key": f"tag_group:{gid}", "label": name, "kind": "tag_group"}
        for gid, name in sorted(cat.tag_groups.items())
    ]
    result += [
        {"key": f"custom:{key}", "label": label, "kind": "custom"}
        for key, (label, type_) in sorted(cat.custom_fields.items())
        if type_ in ("single_select", "multi_select", "text")
    ]
    return result


def analysis_window(
    tz: str, date_from: dt.date | None, date_to: dt.date | None, *, default_days: int = 365
) -> Window:
    today = utcnow().astimezone(ZoneInfo(tz)).date()
    return window(date_from, date_to, tz=tz, today=today, default_days=default_days)


async def compute(
    session: AsyncSession,
    store: AnalyticsStore,
    principal: Principal,
    frames: Sequence[str],
    fn: Compute,
    *args: Any,
) -> Any:
    """Scope first, then frames, then ``fn(frames, scope, *args)`` in the analytics pool."""
    scope = await customer_scope(session, principal)
    loaded: dict[str, pl.DataFrame] = await store.frames(session, ["customers", *frames])
    return await store.run(fn, loaded, scope, *args)


__all__ = ["age_band_labels", "analysis_window", "catalog", "compute", "dimensions", "frames_for"]
