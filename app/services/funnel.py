"""Funnel snapshots for any moment, reconstructed from opportunity history (SPEC E3).

Definitions (also in the API description):

* The snapshot moment ``T`` is the end of the ``as_of`` day in the caller's time zone (now, for
  today). An opportunity's state at ``T`` is its history row with ``valid_from <= T`` and
  ``valid_to`` after ``T`` (or open). Deleted opportunities drop out from their deletion on.
* Per stage: ``count``, ``amount`` and ``weighted_amount`` (amount × the stage's probability, to
  the cent, half up) of the opportunities in that stage at ``T``.
* ``reached`` of an open stage: opportunities that had been in that stage or a later open stage,
  or were won, by ``T``. ``conversion`` from an open stage to the next: reached(next) /
  reached(this); from the last open stage to won: won / reached(last).
* ``avg_days_in_stage``: for opportunities that were in the stage by ``T``, the mean total time
  they spent in it up to ``T`` (consecutive rows of one stage count as one stay), in days.
* ``win_rate``: won / (won + lost) among opportunities closed by ``T``; invalid ones are excluded.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import access
from app.access import Principal
from app.errors import ValidationFailed, field_error
from app.models import Department, Opportunity, OpportunityHistory, Pipeline, User
from app.models.base import utcnow
from app.schemas.opportunity import from_cents, to_cents
from app.services.opportunities import stages_of, weighted_cents
from app.services.today import user_zone

DAY = 86400.0


async def snapshot_moment(
    session: AsyncSession, principal: Principal, as_of: dt.date | None
) -> dt.datetime:
    now = utcnow()
    if as_of is None:
        return now
    zone = user_zone(
        await session.scalar(select(User.timezone).where(User.id == principal.user_id))
    )
    end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), tzinfo=zone).astimezone(
        dt.UTC
    )
    if end > now and as_of <= now.astimezone(zone).date():
        return now  # today: as of now
    if as_of > now.astimezone(zone).date():
        raise ValidationFailed(
            errors=[field_error("as_of", "a snapshot cannot be taken of the future", where="query")]
        )
    return end


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


async def funnel(
    session: AsyncSession,
    principal: Principal,
    *,
    pipeline_id: int | None,
    as_of: dt.date | None,
    owner_id: int | None,
    department_id: int | None,
) -> dict[str, Any]:
    if pipeline_id is None:
        pipeline_id = await session.scalar(select(Pipeline.id).where(Pipeline.is_default.is_(True)))
        if pipeline_id is None:
            raise ValidationFailed(
                errors=[field_error("pipeline_id", "no default pipeline", where="query")]
            )
    elif await session.get(Pipeline, pipeline_id) is None:
        raise ValidationFailed(
            errors=[field_error("pipeline_id", "no such pipeline", where="query")]
        )
    moment = await snapshot_moment(session, principal, as_of)
    stages = (await stages_of(session, [pipeline_id]))[pipeline_id]
    by_id = {s.id: s for s in stages}

    conditions: list[ColumnElement[bool]] = [
        OpportunityHistory.pipeline_id == pipeline_id,
        OpportunityHistory.valid_from <= moment,
        OpportunityHistory.opportunity_id.in_(
            select(Opportunity.id).where(access.readable(principal, Opportunity))
        ),
    ]
    rows = (
        await session.execute(
            select(
                OpportunityHistory.opportunity_id,
                OpportunityHistory.stage_id,
                OpportunityHistory.status,
                OpportunityHistory.owner_id,
                OpportunityHistory.amount_cents,
                OpportunityHistory.valid_from,
                OpportunityHistory.valid_to,
            )
            .where(*conditions)
            .order_by(
                OpportunityHistory.opportunity_id,
                OpportunityHistory.valid_from,
                OpportunityHistory.id,
            )
        )
    ).all()
    allowed_owners: set[int] | None = None
    if department_id is not None:
        path = await session.scalar(select(Department.path).where(Department.id == department_id))
        if path is None:
            raise ValidationFailed(
                errors=[field_error("department_id", "no such department", where="query")]
            )
        allowed_owners = set(
            (
                await session.scalars(
                    select(User.id)
                    .join(Department, Department.id == User.department_id)
                    .where(Department.path.startswith(path, autoescape=True))
                )
            ).all()
        )

    per_opp: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        per_opp[row.opportunity_id].append(row)

    open_positions = sorted(s.position for s in stages if s.kind == "open")
    current: dict[int, Any] = {}
    reached_position: dict[int, int] = {}
    won: set[int] = set()
    lost: set[int] = set()
    stay_seconds: dict[int, dict[int, float]] = defaultdict(dict)  # stage -> opp -> seconds
    for opp_id, history in per_opp.items():
        state = next((h for h in history if h.valid_to is None or h.valid_to > moment), None)
        if state is None:
            continue  # deleted by the moment
        subject_owner = state.owner_id
        if owner_id is not None and subject_owner != owner_id:
            continue
        if allowed_owners is not None and subject_owner not in allowed_owners:
            continue
        current[opp_id] = state
        for h in history:
            stage = by_id.get(h.stage_id)
            if stage is None:
                continue
            end = min(h.valid_to or moment, moment)
            seconds = max(0.0, (end - h.valid_from).total_seconds())
            stay_seconds[stage.id][opp_id] = stay_seconds[stage.id].get(opp_id, 0.0) + seconds
            if stage.kind == "open":
                reached_position[opp_id] = max(reached_position.get(opp_id, -1), stage.position)
        if state.status == "won":
            won.add(opp_id)
        elif state.status == "lost":
            lost.add(opp_id)

    def reached(position: int) -> int:
        return sum(
            1 for opp_id in current if opp_id in won or reached_position.get(opp_id, -1) >= position
        )

    out_stages = []
    for stage in stages:
        members = [state for state in current.values() if state.stage_id == stage.id]
        amount = sum(m.amount_cents for m in members)
        weighted = sum(weighted_cents(m.amount_cents, stage.probability) for m in members)
        stays = stay_seconds.get(stage.id, {})
        entry: dict[str, Any] = {
            "stage_id": stage.id,
            "name": stage.name,
            "kind": stage.kind,
            "probability": stage.probability,
            "count": len(members),
            "amount": from_cents(amount),
            "weighted_amount": from_cents(weighted),
            "avg_days_in_stage": round(sum(stays.values()) / len(stays) / DAY, 2)
            if stays
            else None,
            "reached": None,
            "conversion_to_next": None,
        }
        if stage.kind == "open":
            here = reached(stage.position)
            later = [p for p in open_positions if p > stage.position]
            following = reached(later[0]) if later else len(won)
            entry["reached"] = here
            entry["conversion_to_next"] = _ratio(following, here)
        out_stages.append(entry)
    open_members = [s for s in current.values() if by_id[s.stage_id].kind == "open"]
    return {
        "pipeline_id": pipeline_id,
        "as_of": moment,
        "stages": out_stages,
        "open_count": len(open_members),
        "open_amount": from_cents(sum(s.amount_cents for s in open_members)),
        "weighted_open_amount": from_cents(
            sum(weighted_cents(s.amount_cents, by_id[s.stage_id].probability) for s in open_members)
        ),
        "won_count": len(won),
        "lost_count": len(lost),
        "win_rate": _ratio(len(won), len(won) + len(lost)),
    }


async def _states_at(
    session: AsyncSession, principal: Principal, moment: dt.datetime, pipeline_id: int | None = None
) -> dict[int, Any]:
    """Each (readable) opportunity's history row valid at ``moment``."""
    conditions: list[ColumnElement[bool]] = [
        OpportunityHistory.valid_from <= moment,
        (OpportunityHistory.valid_to.is_(None)) | (OpportunityHistory.valid_to > moment),
        OpportunityHistory.opportunity_id.in_(
            select(Opportunity.id).where(access.readable(principal, Opportunity))
        ),
    ]
    if pipeline_id is not None:
        conditions.append(OpportunityHistory.pipeline_id == pipeline_id)
    rows = (await session.execute(select(OpportunityHistory).where(*conditions))).scalars().all()
    return {row.opportunity_id: row for row in rows}


async def movement(
    session: AsyncSession,
    principal: Principal,
    *,
    from_day: dt.date,
    to_day: dt.date,
    pipeline_id: int | None,
) -> dict[str, Any]:
    """What changed between the end of ``from_day`` and the end of ``to_day`` (SPEC E3).

    ``new``: opened in between; ``won`` / ``lost``: closed so in between; ``advanced`` /
    ``slipped_back``: open at both ends, now in a later / earlier open stage. Amounts are as at
    ``to_day``.
    """
    if to_day < from_day:
        raise ValidationFailed(
            errors=[field_error("to", "must not come before from", where="query")]
        )
    start = await snapshot_moment(session, principal, from_day)
    end = await snapshot_moment(session, principal, to_day)
    before = await _states_at(session, principal, start, pipeline_id)
    after = await _states_at(session, principal, end, pipeline_id)
    stage_rows = await stages_of(
        session, list({s.pipeline_id for s in (*before.values(), *after.values())})
    )
    stages = {s.id: s for group in stage_rows.values() for s in group}
    titles = dict(
        (
            await session.execute(
                select(Opportunity.id, Opportunity.title).where(
                    Opportunity.id.in_(set(after) | set(before))
                )
            )
        ).all()
    )
    groups: dict[str, list[dict[str, Any]]] = {
        k: [] for k in ("new", "advanced", "slipped_back", "won", "lost")
    }
    for opp_id, now_state in after.items():
        then = before.get(opp_id)
        item = {
            "opportunity_id": opp_id,
            "title": titles.get(opp_id, ""),
            "from_stage": stages[then.stage_id].name if then else None,
            "to_stage": stages[now_state.stage_id].name,
            "amount": from_cents(now_state.amount_cents),
        }
        if then is None:
            groups["new"].append(item)
        if now_state.status in ("won", "lost") and (
            then is None or then.status != now_state.status
        ):
            groups[now_state.status].append(item)
        elif then is not None and then.status == "open" and now_state.status == "open":
            delta = stages[now_state.stage_id].position - stages[then.stage_id].position
            if delta > 0:
                groups["advanced"].append(item)
            elif delta < 0:
                groups["slipped_back"].append(item)
    return {
        "from": start,
        "to": end,
        **{
            name: {
                "count": len(items),
                "amount": from_cents(sum(to_cents(i["amount"]) for i in items)),
                "items": sorted(items, key=lambda i: i["opportunity_id"]),
            }
            for name, items in groups.items()
        },
    }


def _months(first: str, last: str) -> list[dt.date]:
    try:
        start = dt.date.fromisoformat(f"{first}-01")
        end = dt.date.fromisoformat(f"{last}-01")
    except ValueError:
        raise ValidationFailed(
            errors=[field_error("from", "months are YYYY-MM", where="query")]
        ) from None
    if end < start:
        raise ValidationFailed(
            errors=[field_error("to", "must not come before from", where="query")]
        )
    months = []
    current = start
    while current <= end:
        months.append(current)
        current = (current + dt.timedelta(days=32)).replace(day=1)
        if len(months) > 36:
            raise ValidationFailed(errors=[field_error("to", "at most 36 months", where="query")])
    return months


async def forecast(
    session: AsyncSession,
    principal: Principal,
    *,
    first_month: str,
    last_month: str,
    pipeline_id: int | None,
) -> dict[str, Any]:
    """Forecast by expected close month (SPEC E4).

    For each month: ``categories`` sums the amounts of open opportunities expected to close in it
    by forecast category (the owner's override, else the stage's); ``closed`` is the amount won
    in the month (by close time, in the caller's time zone). ``weighted`` is Σ amount × stage
    probability over the open ones not in ``omitted``. For months that have begun,
    ``forecast_at_start`` is what ``weighted`` was at the first moment of the month,
    reconstructed from history (with today's stage probabilities and category overrides), so it
    can be set against ``closed``.
    """
    months = _months(first_month, last_month)
    zone = user_zone(
        await session.scalar(select(User.timezone).where(User.id == principal.user_id))
    )
    now = utcnow()
    conditions: list[ColumnElement[bool]] = [
        Opportunity.deleted_at.is_(None),
        access.readable(principal, Opportunity),
    ]
    if pipeline_id is not None:
        conditions.append(Opportunity.pipeline_id == pipeline_id)
    opportunities = (await session.scalars(select(Opportunity).where(*conditions))).all()
    stage_rows = await stages_of(session, list({o.pipeline_id for o in opportunities}))
    stages = {s.id: s for group in stage_rows.values() for s in group}
    overrides = {o.id: o.forecast_category for o in opportunities}

    def month_of(day: dt.date | None) -> dt.date | None:
        return day.replace(day=1) if day else None

    result = []
    for month in months:
        start = dt.datetime.combine(month, dt.time(), tzinfo=zone).astimezone(dt.UTC)
        end = dt.datetime.combine(
            (month + dt.timedelta(days=32)).replace(day=1), dt.time(), tzinfo=zone
        ).astimezone(dt.UTC)
        categories = dict.fromkeys(("pipeline", "best_case", "commit", "omitted"), 0)
        weighted = 0
        closed = 0
        for o in opportunities:
            stage = stages[o.stage_id]
            if o.status == "open" and month_of(o.expected_close_date) == month:
                category = o.forecast_category or stage.forecast_category
                categories[category if category in categories else "pipeline"] += o.amount_cents
                if category != "omitted":
                    weighted += weighted_cents(o.amount_cents, stage.probability)
            if o.status == "won" and o.closed_at is not None and start <= o.closed_at < end:
                closed += o.amount_cents
        at_start: int | None = None
        if start <= now:
            at_start = 0
            for state in (await _states_at(session, principal, start, pipeline_id)).values():
                then = stages.get(state.stage_id)
                if then is None or state.status != "open":
                    continue
                if month_of(state.expected_close_date) != month:
                    continue
                effective = overrides.get(state.opportunity_id) or then.forecast_category
                if effective != "omitted":
                    at_start += weighted_cents(state.amount_cents, then.probability)
        result.append(
            {
                "month": month.strftime("%Y-%m"),
                "categories": {k: from_cents(v) for k, v in categories.items()},
                "closed": from_cents(closed),
                "weighted": from_cents(weighted),
                "forecast_at_start": from_cents(at_start) if at_start is not None else None,
            }
        )
    return {"timezone": zone.key, "months": result}
