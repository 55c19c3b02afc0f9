"""Admin configuration: custom field definitions, tag groups and tags (SPEC B2)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, NotFound, ValidationFailed, field_error
from app.models import CustomerTag, CustomFieldDefinition, Tag, TagGroup
from app.schemas.config import (
    SELECT_TYPES,
    CustomFieldCreate,
    CustomFieldUpdate,
    TagCreate,
    TagGroupCreate,
    TagGroupUpdate,
    TagUpdate,
)
from app.services.versions import check_version

MAX_TEXT = 1000


# --- custom fields ---------------------------------------------------------------------------


async def list_custom_fields(
    session: AsyncSession, entity: str = "customer"
) -> list[CustomFieldDefinition]:
    rows = await session.scalars(
        select(CustomFieldDefinition)
        .where(CustomFieldDefinition.entity == entity)
        .order_by(CustomFieldDefinition.position, CustomFieldDefinition.id)
    )
    return list(rows.all())


async def custom_field_map(
    session: AsyncSession, entity: str = "customer"
) -> dict[str, CustomFieldDefinition]:
    return {d.key: d for d in await list_custom_fields(session, entity)}


async def create_custom_field(
    session: AsyncSession, data: CustomFieldCreate
) -> CustomFieldDefinition:
    exists = await session.scalar(
        select(CustomFieldDefinition.id).where(
            CustomFieldDefinition.entity == data.entity, CustomFieldDefinition.key == data.key
        )
    )
    if exists is not None:
        raise Conflict(
            f"a custom field with key {data.key!r} exists", errors=[field_error("key", "taken")]
        )
    definition = CustomFieldDefinition(**data.model_dump())
    session.add(definition)
    await session.flush()
    return definition


async def get_custom_field(session: AsyncSession, field_id: int) -> CustomFieldDefinition:
    definition = await session.get(CustomFieldDefinition, field_id)
    if definition is None:
        raise NotFound(f"custom field {field_id} not found")
    return definition


async def update_custom_field(
    session: AsyncSession, field_id: int, version: int, data: CustomFieldUpdate
) -> CustomFieldDefinition:
    definition = await get_custom_field(session, field_id)
    check_version(definition, version)
    changes = data.model_dump(exclude_unset=True)
    if "options" in changes:
        options = changes["options"] or []
        if definition.type not in SELECT_TYPES and options:
            raise ValidationFailed(
                errors=[field_error("options", "only select fields take options")]
            )
        if definition.type in SELECT_TYPES and not options:
            raise ValidationFailed(errors=[field_error("options", "select fields need options")])
    for key, value in changes.items():
        if value is None and key in ("label", "required", "position"):
            raise ValidationFailed(errors=[field_error(key, "cannot be null")])
        setattr(definition, key, value)
    await session.flush()
    return definition


async def delete_custom_field(session: AsyncSession, field_id: int, version: int) -> None:
    """Remove the definition; stored values stay in the records but are no longer shown."""
    definition = await get_custom_field(session, field_id)
    check_version(definition, version)
    await session.delete(definition)
    await session.flush()


def _coerce_value(definition: CustomFieldDefinition, value: Any) -> Any:
    kind = definition.type
    if kind == "text":
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise ValueError(f"expected text of at most {MAX_TEXT} characters")
        return value.strip()
    if kind == "number":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError("expected a number")
        return value
    if kind == "date":
        if not isinstance(value, str):
            raise ValueError("expected a date (YYYY-MM-DD)")
        try:
            return dt.date.fromisoformat(value).isoformat()
        except ValueError:
            raise ValueError("expected a date (YYYY-MM-DD)") from None
    if kind == "single_select":
        if value not in definition.options:
            raise ValueError(f"expected one of: {', '.join(definition.options)}")
        return value
    # multi_select
    if not isinstance(value, list) or any(v not in definition.options for v in value):
        raise ValueError(f"expected a list drawn from: {', '.join(definition.options)}")
    return [o for o in definition.options if o in value]


def validate_custom_values(
    definitions: Mapping[str, CustomFieldDefinition],
    values: Mapping[str, Any],
    *,
    current: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The merged, coerced custom values; 422 listing every bad field.

    ``current`` is the stored dict for an update (keys given replace, ``None`` removes); for a
    create it is None and required fields must be present.
    """
    errors: list[dict[str, Any]] = []
    merged: dict[str, Any] = dict(current or {})
    for key, value in values.items():
        definition = definitions.get(key)
        if definition is None:
            errors.append(
                field_error(f"custom_fields.{key}", "no such custom field", "unknown_field")
            )
            continue
        if value is None or value == "" or value == []:
            merged.pop(key, None)
            continue
        try:
            merged[key] = _coerce_value(definition, value)
        except ValueError as exc:
            errors.append(field_error(f"custom_fields.{key}", str(exc)))
    for key, definition in definitions.items():
        if definition.required and key not in merged and (current is None or key in values):
            errors.append(
                field_error(f"custom_fields.{key}", f"{definition.label} is required", "missing")
            )
    if errors:
        raise ValidationFailed("some custom fields are invalid", errors=errors)
    return merged


# --- tags ------------------------------------------------------------------------------------


async def list_tag_groups(session: AsyncSession) -> list[tuple[TagGroup, list[Tag]]]:
    groups = (
        await session.scalars(select(TagGroup).order_by(TagGroup.position, TagGroup.id))
    ).all()
    tags = (await session.scalars(select(Tag).order_by(Tag.position, Tag.id))).all()
    by_group: dict[int, list[Tag]] = {}
    for tag in tags:
        by_group.setdefault(tag.group_id, []).append(tag)
    return [(g, by_group.get(g.id, [])) for g in groups]


async def get_tag_group(session: AsyncSession, group_id: int) -> TagGroup:
    group = await session.get(TagGroup, group_id)
    if group is None:
        raise NotFound(f"tag group {group_id} not found")
    return group


async def _name_taken(session: AsyncSession, stmt: Any) -> bool:
    return (await session.scalar(stmt)) is not None


async def create_tag_group(session: AsyncSession, data: TagGroupCreate) -> TagGroup:
    if await _name_taken(session, select(TagGroup.id).where(TagGroup.name == data.name)):
        raise Conflict(f"tag group {data.name!r} exists", errors=[field_error("name", "taken")])
    group = TagGroup(**data.model_dump())
    session.add(group)
    await session.flush()
    return group


async def update_tag_group(
    session: AsyncSession, group_id: int, version: int, data: TagGroupUpdate
) -> TagGroup:
    group = await get_tag_group(session, group_id)
    check_version(group, version)
    changes = data.model_dump(exclude_unset=True)
    if (
        changes.get("name")
        and changes["name"] != group.name
        and await _name_taken(session, select(TagGroup.id).where(TagGroup.name == changes["name"]))
    ):
        raise Conflict(
            f"tag group {changes['name']!r} exists", errors=[field_error("name", "taken")]
        )
    for key, value in changes.items():
        if value is None and key != "color":
            raise ValidationFailed(errors=[field_error(key, "cannot be null")])
        setattr(group, key, value)
    await session.flush()
    return group


async def delete_tag_group(session: AsyncSession, group_id: int, version: int) -> None:
    group = await get_tag_group(session, group_id)
    check_version(group, version)
    if await session.scalar(select(func.count(Tag.id)).where(Tag.group_id == group_id)):
        raise Conflict("delete the group's tags first")
    await session.delete(group)
    await session.flush()


async def get_tag(session: AsyncSession, tag_id: int) -> Tag:
    tag = await session.get(Tag, tag_id)
    if tag is None:
        raise NotFound(f"tag {tag_id} not found")
    return tag


async def list_tags(session: AsyncSession, group_id: int | None) -> list[Tag]:
    stmt = select(Tag).order_by(Tag.group_id, Tag.position, Tag.id)
    if group_id is not None:
        stmt = stmt.where(Tag.group_id == group_id)
    return list((await session.scalars(stmt)).all())


async def create_tag(session: AsyncSession, data: TagCreate) -> Tag:
    if await session.get(TagGroup, data.group_id) is None:
        raise ValidationFailed(errors=[field_error("group_id", "no such tag group")])
    if await _name_taken(
        session, select(Tag.id).where(Tag.group_id == data.group_id, Tag.name == data.name)
    ):
        raise Conflict(
            f"tag {data.name!r} exists in this group", errors=[field_error("name", "taken")]
        )
    tag = Tag(**data.model_dump())
    session.add(tag)
    await session.flush()
    return tag


async def update_tag(session: AsyncSession, tag_id: int, version: int, data: TagUpdate) -> Tag:
    tag = await get_tag(session, tag_id)
    check_version(tag, version)
    changes = data.model_dump(exclude_unset=True)
    if (
        changes.get("name")
        and changes["name"] != tag.name
        and await _name_taken(
            session, select(Tag.id).where(Tag.group_id == tag.group_id, Tag.name == changes["name"])
        )
    ):
        raise Conflict(
            f"tag {changes['name']!r} exists in this group", errors=[field_error("name", "taken")]
        )
    for key, value in changes.items():
        if value is None:
            raise ValidationFailed(errors=[field_error(key, "cannot be null")])
        setattr(tag, key, value)
    await session.flush()
    return tag


async def delete_tag(session: AsyncSession, tag_id: int, version: int) -> None:
    """Refused while the tag was ever assigned: its history feeds past personas."""
    tag = await get_tag(session, tag_id)
    check_version(tag, version)
    if await session.scalar(select(CustomerTag.id).where(CustomerTag.tag_id == tag_id).limit(1)):
        raise Conflict("this tag has been assigned to customers; its history must stay")
    await session.delete(tag)
    await session.flush()


async def tags_by_id(
    session: AsyncSession, tag_ids: Sequence[int]
) -> dict[int, tuple[Tag, TagGroup]]:
    if not tag_ids:
        return {}
    rows = await session.execute(
        select(Tag, TagGroup)
        .join(TagGroup, TagGroup.id == Tag.group_id)
        .where(Tag.id.in_(set(tag_ids)))
    )
    return {tag.id: (tag, group) for tag, group in rows.all()}
