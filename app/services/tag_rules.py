"""Auto-tag rules (SPEC H10): admin-defined conditions on customer fields, custom fields and
computed metrics that give or take one tag, previewed on demand and re-applied by the scheduler.

A rule's conditions compile to Polars expressions over one table per customer: the customer
columns (``customers`` frame), the metrics of ``analytics.metrics.customer_metrics`` and one
column per custom field used (``custom:<key>`` frames), all loaded through the AnalyticsStore and
computed in its worker pool. Metrics are always computed over every customer, so a rule means
the same thing whoever runs it (an RFM quintile is a rank among all customers); the caller's
data scope then limits which customers a preview shows and a run touches.

Runs are set-based: per chunk of ids, one multi-row INSERT for the customers gaining the tag
(the active-span unique index skips any tagged meanwhile) and one UPDATE closing the spans of
those losing it (history rows are never deleted). Giving a tag of an exclusive
group ends the customer's other tag of that group, as a person choosing it would.

A run writes one audit event on the rule (``tag_rule/<id>``, action ``tag_rule_run``) with its
counts, not one timeline entry per customer: a rule may change 100k customers at once. The tag
spans themselves record who (``added_by_id``/``removed_by_id``: the admin for a manual run, NULL
for the scheduler) and when.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.access import CustomerScope, Principal, customer_scope
from app.db import READ_ONLY, chunks, dialect_insert, transaction
from app.errors import Conflict, NotFound, ValidationFailed, field_error
from app.models import Customer, CustomerTag, CustomFieldDefinition, Tag, TagGroup, TagRule
from app.models.base import utcnow
from app.schemas.tag_rule import (
    MAX_LIST_VALUES,
    TagRuleBody,
    TagRuleCreate,
    TagRuleUpdate,
)
from app.services import audit, config
from app.services.analytics.frames import AnalyticsStore, scoped
from app.services.analytics.metrics import METRIC_FRAMES, customer_metrics
from app.services.analytics.value import SEGMENTS
from app.services.versions import check_version, flush_versioned

log = logging.getLogger("kehu.tag_rules")

Kind = Literal["text", "choice", "number", "date", "bool", "multi"]
Op = str

# Every customer: the scheduler's scope, and the population metrics are computed over.
EVERYONE = CustomerScope(owner_ids=None, team_ids=frozenset(), pool_ids=frozenset())
# Customers listed per direction in a preview.
PREVIEW_SAMPLE = 50
# Ids per statement when applying a run.
APPLY_CHUNK = 5000
MAX_TEXT_VALUE = 200

_COMPARE = ("eq", "ne", "in", "not_in")
_ORDER = ("gt", "gte", "lt", "lte")
_NULLS = ("is_null", "not_null")
OPS_BY_KIND: Mapping[Kind, tuple[str, ...]] = {
    "text": _COMPARE + _NULLS,
    "choice": _COMPARE + _NULLS,
    "multi": _COMPARE + _NULLS,
    "number": _COMPARE + _ORDER + _NULLS,
    "date": _COMPARE + _ORDER + _NULLS,
    "bool": ("eq", "ne"),
}


@dataclass(frozen=True)
class FieldType:
    kind: Kind
    choices: tuple[str, ...] = ()


# Columns of the customers frame a rule may test.
CUSTOMER_FIELDS: Mapping[str, FieldType] = {
    "industry": FieldType("text"),
    "level": FieldType("choice", ("A", "B", "C")),
    "source": FieldType("text"),
    "province": FieldType("text"),
    "city": FieldType("text"),
    "gender": FieldType("choice", ("male", "female")),
    "kind": FieldType("choice", ("company", "person")),
    "deal_status": FieldType("choice", ("none", "signed")),
}
# Columns of analytics.metrics.customer_metrics (their definitions are in METRICS there).
METRIC_FIELDS: Mapping[str, FieldType] = {
    "rfm_segment": FieldType("choice", SEGMENTS),
    "pyramid_tier": FieldType("choice", ("A", "B", "C", "D")),
    "churn_risk": FieldType("bool"),
    "lead_score": FieldType("number"),
    "recency_days": FieldType("number"),
    "frequency": FieldType("number"),
    "monetary_cents": FieldType("number"),
}
_CUSTOM_KINDS: Mapping[str, Kind] = {
    "text": "text",
    "number": "number",
    "date": "date",
    "single_select": "choice",
    "multi_select": "multi",
}
CUSTOM_PREFIX = "custom."


@dataclass(frozen=True)
class Condition:
    """One checked condition: ``column`` names the evaluation table's column."""

    column: str
    kind: Kind
    op: Op
    value: Any


@dataclass(frozen=True)
class CompiledRule:
    tag_id: int
    action: str
    conditions: tuple[Condition, ...]

    @property
    def uses_metrics(self) -> bool:
        return any(c.column in METRIC_FIELDS for c in self.conditions)

    @property
    def custom_keys(self) -> list[str]:
        keys = (c.column.removeprefix(CUSTOM_PREFIX) for c in self.conditions)
        return sorted({k for c, k in zip(self.conditions, keys, strict=True) if c.column != k})

    @property
    def frames(self) -> list[str]:
        names = ["customers"]
        if self.uses_metrics:
            names += METRIC_FRAMES
        names += [f"custom:{k}" for k in self.custom_keys]
        return list(dict.fromkeys(names))


# --- validation --------------------------------------------------------------------------------


def _field_type(name: str, definitions: Mapping[str, CustomFieldDefinition]) -> FieldType | str:
    """The field's type, or why the name is not a field."""
    if name in CUSTOMER_FIELDS:
        return CUSTOMER_FIELDS[name]
    if name in METRIC_FIELDS:
        return METRIC_FIELDS[name]
    if name.startswith(CUSTOM_PREFIX):
        definition = definitions.get(name.removeprefix(CUSTOM_PREFIX))
        if definition is None:
            return "no such custom field"
        return FieldType(_CUSTOM_KINDS[definition.type], tuple(definition.options or ()))
    return (
        "unknown field; use one of "
        + ", ".join([*CUSTOMER_FIELDS, *METRIC_FIELDS])
        + " or custom.<key>"
    )


def _scalar(kind: Kind, choices: tuple[str, ...], value: Any) -> Any:
    """The value as the evaluation compares it; ValueError when it does not fit the field."""
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError("expected true or false")
        return value
    if kind == "number":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError("expected a number")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("expected a string")
    if kind == "date":
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError("expected a date (YYYY-MM-DD)") from None
    if kind in ("choice", "multi") and value not in choices:
        raise ValueError(f"expected one of: {', '.join(choices)}")
    if not value or len(value) > MAX_TEXT_VALUE:
        raise ValueError(f"expected 1 to {MAX_TEXT_VALUE} characters")
    return value


def _checked_value(kind: Kind, choices: tuple[str, ...], op: Op, value: Any) -> Any:
    if op in _NULLS:
        if value is not None:
            raise ValueError(f"{op} takes no value")
        return None
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value or len(value) > MAX_LIST_VALUES:
            raise ValueError(f"expected a list of 1 to {MAX_LIST_VALUES} values")
        return tuple(dict.fromkeys(_scalar(kind, choices, v) for v in value))
    if isinstance(value, list) or value is None:
        raise ValueError("expected a single value")
    return _scalar(kind, choices, value)


def compile_conditions(
    conditions: Sequence[Mapping[str, Any]],
    definitions: Mapping[str, CustomFieldDefinition],
    *,
    where: str = "body",
) -> tuple[Condition, ...]:
    """Check every condition against the field catalog; 422 listing every problem."""
    errors: list[dict[str, Any]] = []
    compiled: list[Condition] = []
    for i, raw in enumerate(conditions):
        name, op, value = raw["field"], raw["op"], raw.get("value")
        loc = [where, "conditions", i]
        ftype = _field_type(name, definitions)
        if isinstance(ftype, str):
            errors.append({"loc": [*loc, "field"], "msg": ftype, "type": "unknown_field"})
            continue
        if op not in OPS_BY_KIND[ftype.kind]:
            errors.append(
                {
                    "loc": [*loc, "op"],
                    "msg": f"{op} does not apply to {name}; use one of "
                    + ", ".join(OPS_BY_KIND[ftype.kind]),
                    "type": "value_error",
                }
            )
            continue
        try:
            checked = _checked_value(ftype.kind, ftype.choices, op, value)
        except ValueError as exc:
            errors.append({"loc": [*loc, "value"], "msg": str(exc), "type": "value_error"})
            continue
        compiled.append(Condition(name, ftype.kind, op, checked))
    if errors:
        raise ValidationFailed("some conditions are invalid", errors=errors)
    return tuple(compiled)


async def _tag_and_group(session: AsyncSession, tag_id: int) -> tuple[Tag, TagGroup]:
    found = (await config.tags_by_id(session, [tag_id])).get(tag_id)
    if found is None:
        raise ValidationFailed(errors=[field_error("tag_id", "no such tag")])
    return found


async def compile_rule(
    session: AsyncSession, tag_id: int, action: str, conditions: Sequence[Mapping[str, Any]]
) -> CompiledRule:
    """The rule checked against the tags and custom fields as they are now (422 otherwise)."""
    await _tag_and_group(session, tag_id)
    definitions = await config.custom_field_map(session)
    return CompiledRule(tag_id, action, compile_conditions(conditions, definitions))


# --- evaluation (Polars, in the analytics pool) -----------------------------------------------


def _column(c: Condition) -> pl.Expr:
    column = pl.col(c.column)
    if c.kind == "number":
        # Custom number fields arrive as text; metrics as integers or floats.
        return column.cast(pl.Float64, strict=False)
    if c.kind == "date":
        return column.str.to_date("%Y-%m-%d", strict=False)
    if c.kind == "multi":
        return column.str.json_decode(pl.List(pl.String))
    return column


def condition_expr(c: Condition) -> pl.Expr:
    """The condition as a boolean expression; comparisons are false where the value is missing."""
    column = _column(c)
    if c.op == "is_null":
        return column.is_null()
    if c.op == "not_null":
        return column.is_not_null()
    values = list(c.value) if isinstance(c.value, tuple) else [c.value]
    if c.kind == "multi":
        # A multi-select holds a list: eq/in mean "holds any of", ne/not_in "holds none of".
        holds = column.list.eval(pl.element().is_in(values)).list.any()
        test = holds if c.op in ("eq", "in") else ~holds
    elif c.op == "in":
        test = column.is_in(values)
    elif c.op == "not_in":
        test = ~column.is_in(values)
    else:
        literal_value = pl.lit(c.value)
        test = {
            "eq": column == literal_value,
            "ne": column != literal_value,
            "gt": column > literal_value,
            "gte": column >= literal_value,
            "lt": column < literal_value,
            "lte": column <= literal_value,
        }[c.op]
    return column.is_not_null() & test


@dataclass
class Changes:
    """Who a run would change, within the scope it was evaluated for."""

    matching: int
    add_ids: list[int] = field(default_factory=list)
    remove_ids: list[int] = field(default_factory=list)
    add_sample: list[dict[str, Any]] = field(default_factory=list)
    remove_sample: list[dict[str, Any]] = field(default_factory=list)

    def preview(self) -> dict[str, Any]:
        return {
            "matching": self.matching,
            "add_count": len(self.add_ids),
            "remove_count": len(self.remove_ids),
            "add": self.add_sample,
            "remove": self.remove_sample,
        }


def rule_changes(
    frames: Mapping[str, pl.DataFrame],
    scope: CustomerScope,
    holders: Sequence[int],
    rule: CompiledRule,
    now: dt.datetime,
    tz: str,
) -> Changes:
    """Match every customer, then keep those in ``scope`` whose tag would change.

    ``holders`` are the customers holding the rule's tag now (read from the database in the
    caller's transaction, so a run never works from a stale idea of who has the tag).
    """
    everyone = frames["customers"]
    table = everyone.select("id", "name", *CUSTOMER_FIELDS)
    if rule.uses_metrics:
        table = table.join(customer_metrics(frames, EVERYONE, now, tz), on="id", how="left")
    for key in rule.custom_keys:
        values = frames[f"custom:{key}"].select(
            pl.col("customer_id").alias("id"), pl.col("value").alias(CUSTOM_PREFIX + key)
        )
        table = table.join(values, on="id", how="left")
    held = pl.DataFrame({"id": list(holders)}, schema={"id": pl.Int64}).with_columns(
        has=pl.lit(True)
    )
    table = (
        table.join(scoped(everyone, scope).select("id"), on="id", how="semi")
        .select(
            "id",
            "name",
            match=pl.all_horizontal(condition_expr(c) for c in rule.conditions).fill_null(False),
        )
        .join(held, on="id", how="left")
        .with_columns(pl.col("has").fill_null(False))
        .sort("id")
    )
    match, has = pl.col("match"), pl.col("has")
    add = {"add": match & ~has, "remove": pl.lit(False), "sync": match & ~has}[rule.action]
    remove = {"add": pl.lit(False), "remove": match & has, "sync": ~match & has}[rule.action]
    gaining = table.filter(add).select("id", "name")
    losing = table.filter(remove).select("id", "name")
    return Changes(
        matching=int(table["match"].sum()),
        add_ids=gaining["id"].to_list(),
        remove_ids=losing["id"].to_list(),
        add_sample=gaining.head(PREVIEW_SAMPLE).to_dicts(),
        remove_sample=losing.head(PREVIEW_SAMPLE).to_dicts(),
    )


async def _holders(session: AsyncSession, tag_id: int) -> list[int]:
    rows = await session.scalars(
        select(CustomerTag.customer_id).where(
            CustomerTag.tag_id == tag_id, CustomerTag.removed_at.is_(None)
        )
    )
    return list(rows.all())


async def evaluate(
    session: AsyncSession, store: AnalyticsStore, rule: CompiledRule, scope: CustomerScope, tz: str
) -> Changes:
    frames = await store.frames(session, rule.frames)
    holders = await _holders(session, rule.tag_id)
    return await store.run(rule_changes, frames, scope, holders, rule, utcnow(), tz)


# --- applying ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    added: int
    removed: int
    replaced: int
    ran_at: dt.datetime


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def apply_changes(
    session: AsyncSession,
    tag_id: int,
    changes: Changes,
    *,
    actor_id: int | None,
    now: dt.datetime,
) -> tuple[int, int, int]:
    """Give and take the tag set-based; (added, removed, replaced other exclusive tags)."""
    tag, group = await _tag_and_group(session, tag_id)
    rivals: list[int] = []
    if group.exclusive:
        rivals = list(
            (
                await session.scalars(
                    select(Tag.id).where(Tag.group_id == group.id, Tag.id != tag.id)
                )
            ).all()
        )
    closed = {"removed_at": now, "removed_by_id": actor_id}
    no_sync = {"synchronize_session": False}
    removed = replaced = added = 0
    for part in chunks(changes.remove_ids, APPLY_CHUNK):
        result = await session.execute(
            update(CustomerTag)
            .where(
                CustomerTag.tag_id == tag.id,
                CustomerTag.removed_at.is_(None),
                CustomerTag.customer_id.in_(part),
            )
            .values(**closed)
            .execution_options(**no_sync)
        )
        removed += _count(result)
    for part in chunks(changes.add_ids, APPLY_CHUNK):
        live = list(
            (
                await session.scalars(
                    select(Customer.id).where(Customer.id.in_(part), Customer.deleted_at.is_(None))
                )
            ).all()
        )
        if not live:
            continue
        if rivals:
            result = await session.execute(
                update(CustomerTag)
                .where(
                    CustomerTag.tag_id.in_(rivals),
                    CustomerTag.removed_at.is_(None),
                    CustomerTag.customer_id.in_(live),
                )
                .values(**closed)
                .execution_options(**no_sync)
            )
            replaced += _count(result)
        # Plain rows with the active-span unique index as the guard (a customer tagged meanwhile
        # is skipped): an anti-join would leave the plan to table statistics that a run's own
        # inserts make stale (a nested loop over a growing table on PostgreSQL).
        inserted = await session.scalars(
            dialect_insert(session, CustomerTag)
            .on_conflict_do_nothing(
                index_elements=["customer_id", "tag_id"],
                index_where=CustomerTag.removed_at.is_(None),
            )
            .returning(CustomerTag.customer_id),
            [
                {"customer_id": cid, "tag_id": tag.id, "added_at": now, "added_by_id": actor_id}
                for cid in live
            ],
        )
        added += len(inserted.all())
    return added, removed, replaced


async def _run(
    session: AsyncSession,
    rule: TagRule,
    changes: Changes,
    *,
    actor_id: int | None,
) -> RunResult:
    now = utcnow()
    added, removed, replaced = await apply_changes(
        session, rule.tag_id, changes, actor_id=actor_id, now=now
    )
    # Run statistics are not an edit: the rule's version (its ETag) and updated_at stay.
    await session.execute(
        update(TagRule)
        .where(TagRule.id == rule.id)
        .values(
            last_run_at=now,
            last_added=added,
            last_removed=removed,
            updated_at=TagRule.updated_at,
        )
        .execution_options(synchronize_session=False)
    )
    if actor_id is not None or added or removed or replaced:
        audit.record_event(
            session,
            actor_id=actor_id,
            entity="tag_rule",
            entity_id=rule.id,
            action="tag_rule_run",
            changes={
                "added": {"before": None, "after": added},
                "removed": {"before": None, "after": removed},
                "replaced": {"before": None, "after": replaced},
            },
        )
    log.info(
        "tag rule %s ran: %d added, %d removed, %d replaced", rule.id, added, removed, replaced
    )
    return RunResult(added, removed, replaced, now)


# --- rules: CRUD, preview, run ---------------------------------------------------------------


async def list_rules(session: AsyncSession) -> list[TagRule]:
    return list((await session.scalars(select(TagRule).order_by(TagRule.id))).all())


async def get_rule(session: AsyncSession, rule_id: int) -> TagRule:
    rule = await session.get(TagRule, rule_id)
    if rule is None:
        raise NotFound(f"tag rule {rule_id} not found")
    return rule


async def _check_name(session: AsyncSession, name: str, rule_id: int | None = None) -> None:
    stmt = select(TagRule.id).where(TagRule.name == name)
    if rule_id is not None:
        stmt = stmt.where(TagRule.id != rule_id)
    if await session.scalar(stmt) is not None:
        raise Conflict(f"a tag rule named {name!r} exists", errors=[field_error("name", "taken")])


def _stored_conditions(body: TagRuleBody | TagRuleUpdate) -> list[dict[str, Any]]:
    return [c.model_dump() for c in body.conditions or []]


async def create_rule(session: AsyncSession, principal: Principal, data: TagRuleCreate) -> TagRule:
    conditions = _stored_conditions(data)
    await compile_rule(session, data.tag_id, data.action, conditions)
    await _check_name(session, data.name)
    rule = TagRule(
        name=data.name,
        tag_id=data.tag_id,
        action=data.action,
        conditions=conditions,
        enabled=data.enabled,
        created_by_id=principal.user_id,
        last_added=0,
        last_removed=0,
    )
    session.add(rule)
    await session.flush()
    return rule


async def update_rule(
    session: AsyncSession, rule_id: int, version: int, data: TagRuleUpdate
) -> TagRule:
    rule = await get_rule(session, rule_id)
    check_version(rule, version)
    changes = data.model_dump(exclude_unset=True)
    nulls = [k for k, v in changes.items() if v is None]
    if nulls:
        raise ValidationFailed(errors=[field_error(k, "cannot be null") for k in nulls])
    if "conditions" in changes:
        changes["conditions"] = _stored_conditions(data)
    if {"tag_id", "action", "conditions"} & changes.keys():
        await compile_rule(
            session,
            changes.get("tag_id", rule.tag_id),
            changes.get("action", rule.action),
            changes.get("conditions", rule.conditions),
        )
    if "name" in changes and changes["name"] != rule.name:
        await _check_name(session, changes["name"], rule.id)
    for key, value in changes.items():
        setattr(rule, key, value)
    await flush_versioned(session)
    return rule


async def delete_rule(session: AsyncSession, rule_id: int, version: int) -> None:
    """Delete the rule; the tags it gave or took stay as they are, history included."""
    rule = await get_rule(session, rule_id)
    check_version(rule, version)
    await session.delete(rule)
    await session.flush()


async def preview(
    session: AsyncSession,
    store: AnalyticsStore,
    principal: Principal,
    body: TagRuleBody,
    tz: str,
) -> dict[str, Any]:
    """Who an unsaved rule would change now, among the customers the caller may read."""
    rule = await compile_rule(session, body.tag_id, body.action, _stored_conditions(body))
    scope = await customer_scope(session, principal)
    return (await evaluate(session, store, rule, scope, tz)).preview()


async def preview_rule(
    session: AsyncSession, store: AnalyticsStore, principal: Principal, rule_id: int, tz: str
) -> dict[str, Any]:
    saved = await get_rule(session, rule_id)
    rule = await compile_rule(session, saved.tag_id, saved.action, saved.conditions)
    scope = await customer_scope(session, principal)
    return (await evaluate(session, store, rule, scope, tz)).preview()


async def run_rule(
    session: AsyncSession, store: AnalyticsStore, principal: Principal, rule_id: int, tz: str
) -> RunResult:
    """Apply a rule now to the customers the caller may read (enabled or not)."""
    saved = await get_rule(session, rule_id)
    rule = await compile_rule(session, saved.tag_id, saved.action, saved.conditions)
    scope = await customer_scope(session, principal)
    changes = await evaluate(session, store, rule, scope, tz)
    return await _run(session, saved, changes, actor_id=principal.user_id)


async def run_enabled_rules(
    maker: async_sessionmaker[AsyncSession], store: AnalyticsStore, *, tz: str
) -> dict[int, RunResult]:
    """The scheduler's pass: every enabled rule over every customer, one transaction per rule.

    Each rule is evaluated in a read-only session (SQLite's write lock is not held while Polars
    works) and applied in a short write transaction; a rule that no longer compiles (its tag or
    custom field was changed) is logged and skipped.
    """
    async with maker() as session:
        await session.connection(execution_options=READ_ONLY)
        rule_ids = list(
            (
                await session.scalars(
                    select(TagRule.id).where(TagRule.enabled.is_(True)).order_by(TagRule.id)
                )
            ).all()
        )
    results: dict[int, RunResult] = {}
    for rule_id in rule_ids:
        try:
            async with maker() as session:
                await session.connection(execution_options=READ_ONLY)
                saved = await session.get(TagRule, rule_id)
                if saved is None or not saved.enabled:
                    continue
                rule = await compile_rule(session, saved.tag_id, saved.action, saved.conditions)
                changes = await evaluate(session, store, rule, EVERYONE, tz)
            async with transaction(maker) as session:
                results[rule_id] = await _run(session, saved, changes, actor_id=None)
        except ValidationFailed as exc:
            log.warning(
                "tag rule %s skipped: %s",
                rule_id,
                exc.errors or exc.detail,
                extra={"rule": rule_id},
            )
    return results
