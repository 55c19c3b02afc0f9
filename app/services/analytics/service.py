"""The analyses as the API calls them: resolve the caller's scope, get the frames, compute off
the event loop."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.access import Principal, customer_scope
from app.models import CustomFieldDefinition, TagGroup
from app.models.base import utcnow
from app.services.analytics.common import (
    AGE_BAND_LABEL,
    FIELD_DIMENSIONS,
    Catalog,
    Window,
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
    result.append({"key": "age_band", "label": AGE_BAND_LABEL, "kind": "age_band"})
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


@dataclass(frozen=True)
class Analysis:
    """One analytics request: who asks, through which session and store, in which time zone."""

    session: AsyncSession
    principal: Principal
    store: AnalyticsStore
    tz: str

    def window(
        self, date_from: dt.date | None, date_to: dt.date | None, *, default_days: int = 365
    ) -> Window:
        """The window in the business time zone (default: the last ``default_days`` days)."""
        today = utcnow().astimezone(ZoneInfo(self.tz)).date()
        return window(date_from, date_to, tz=self.tz, today=today, default_days=default_days)

    async def catalog(self) -> Catalog:
        return await catalog(self.session)

    async def run(self, frames: Sequence[str], fn: Compute, *args: Any) -> Any:
        """Scope first, then the frames, then ``fn(frames, scope, *args)`` in the pool."""
        scope = await customer_scope(self.session, self.principal)
        loaded = await self.store.frames(self.session, ["customers", *frames])
        return await self.store.run(fn, loaded, scope, *args)
