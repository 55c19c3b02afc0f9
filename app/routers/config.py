"""Custom field definitions, tag groups and tags (SPEC B2). Everyone reads; admins write."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Response, status

from app.access import Principal
from app.deps import CurrentPrincipal, IfMatch, SessionDep, require
from app.routers.common import WITH_ETAG, ApiRouter, problems, set_etag
from app.schemas.config import (
    CustomFieldCreate,
    CustomFieldOut,
    CustomFieldUpdate,
    TagBrief,
    TagCreate,
    TagGroupCreate,
    TagGroupOut,
    TagGroupUpdate,
    TagUpdate,
)
from app.services import config as service

router = ApiRouter(tags=["configuration"])
Admin = Annotated[Principal, Depends(require("config.manage"))]
NO_CONTENT = status.HTTP_204_NO_CONTENT


@router.get("/custom-fields", response_model=list[CustomFieldOut], responses=problems())
async def list_custom_fields(_: CurrentPrincipal, session: SessionDep) -> list[CustomFieldOut]:
    """Custom field definitions for customers, in display order."""
    return [CustomFieldOut.model_validate(d) for d in await service.list_custom_fields(session)]


@router.post(
    "/custom-fields", response_model=CustomFieldOut, status_code=201, responses=problems(403, 409)
)
async def create_custom_field(
    body: CustomFieldCreate, _: Admin, session: SessionDep
) -> CustomFieldOut:
    """Define a custom field."""
    return CustomFieldOut.model_validate(await service.create_custom_field(session, body))


@router.get(
    "/custom-fields/{field_id}",
    response_model=CustomFieldOut,
    responses={**problems(404), **WITH_ETAG},
)
async def get_custom_field(
    field_id: int, _: CurrentPrincipal, session: SessionDep, response: Response
) -> CustomFieldOut:
    """Read one custom field definition."""
    definition = await service.get_custom_field(session, field_id)
    set_etag(response, definition.version)
    return CustomFieldOut.model_validate(definition)


@router.patch(
    "/custom-fields/{field_id}",
    response_model=CustomFieldOut,
    responses=problems(403, 404, 412, 428),
)
async def update_custom_field(
    field_id: int,
    body: CustomFieldUpdate,
    version: IfMatch,
    _: Admin,
    session: SessionDep,
    response: Response,
) -> CustomFieldOut:
    """Change a custom field's label, options, required flag or position."""
    definition = await service.update_custom_field(session, field_id, version, body)
    set_etag(response, definition.version)
    return CustomFieldOut.model_validate(definition)


@router.delete(
    "/custom-fields/{field_id}", status_code=NO_CONTENT, responses=problems(403, 404, 412, 428)
)
async def delete_custom_field(
    field_id: int, version: IfMatch, _: Admin, session: SessionDep
) -> Response:
    """Remove a custom field definition."""
    await service.delete_custom_field(session, field_id, version)
    return Response(status_code=NO_CONTENT)


def _group_out(group: object, tags: list[object]) -> TagGroupOut:
    return TagGroupOut.model_validate(
        {
            **{
                k: getattr(group, k)
                for k in ("id", "name", "color", "exclusive", "position", "version")
            },
            "tags": [TagBrief.model_validate(t) for t in tags],
        }
    )


@router.get("/tag-groups", response_model=list[TagGroupOut], responses=problems())
async def list_tag_groups(_: CurrentPrincipal, session: SessionDep) -> list[TagGroupOut]:
    """Tag groups with their tags."""
    return [_group_out(g, list(tags)) for g, tags in await service.list_tag_groups(session)]


@router.post(
    "/tag-groups", response_model=TagGroupOut, status_code=201, responses=problems(403, 409)
)
async def create_tag_group(body: TagGroupCreate, _: Admin, session: SessionDep) -> TagGroupOut:
    """Create a tag group."""
    return _group_out(await service.create_tag_group(session, body), [])


@router.get(
    "/tag-groups/{group_id}", response_model=TagGroupOut, responses={**problems(404), **WITH_ETAG}
)
async def get_tag_group(
    group_id: int, _: CurrentPrincipal, session: SessionDep, response: Response
) -> TagGroupOut:
    """Read one tag group with its tags."""
    group = await service.get_tag_group(session, group_id)
    set_etag(response, group.version)
    return _group_out(group, list(await service.list_tags(session, group_id)))


@router.patch(
    "/tag-groups/{group_id}",
    response_model=TagGroupOut,
    responses=problems(403, 404, 409, 412, 428),
)
async def update_tag_group(
    group_id: int,
    body: TagGroupUpdate,
    version: IfMatch,
    _: Admin,
    session: SessionDep,
    response: Response,
) -> TagGroupOut:
    """Rename or reorder a tag group, or change its colour or exclusivity."""
    group = await service.update_tag_group(session, group_id, version, body)
    set_etag(response, group.version)
    return _group_out(group, list(await service.list_tags(session, group_id)))


@router.delete(
    "/tag-groups/{group_id}", status_code=NO_CONTENT, responses=problems(403, 404, 409, 412, 428)
)
async def delete_tag_group(
    group_id: int, version: IfMatch, _: Admin, session: SessionDep
) -> Response:
    """Delete an empty tag group."""
    await service.delete_tag_group(session, group_id, version)
    return Response(status_code=NO_CONTENT)


@router.get("/tags", response_model=list[TagBrief], responses=problems())
async def list_tags(
    _: CurrentPrincipal, session: SessionDep, group_id: Annotated[int | None, Query()] = None
) -> list[TagBrief]:
    """Tags, optionally of one group."""
    return [TagBrief.model_validate(t) for t in await service.list_tags(session, group_id)]


@router.post("/tags", response_model=TagBrief, status_code=201, responses=problems(403, 409))
async def create_tag(body: TagCreate, _: Admin, session: SessionDep) -> TagBrief:
    """Create a tag in a group."""
    return TagBrief.model_validate(await service.create_tag(session, body))


@router.get("/tags/{tag_id}", response_model=TagBrief, responses={**problems(404), **WITH_ETAG})
async def get_tag(
    tag_id: int, _: CurrentPrincipal, session: SessionDep, response: Response
) -> TagBrief:
    """Read one tag."""
    tag = await service.get_tag(session, tag_id)
    set_etag(response, tag.version)
    return TagBrief.model_validate(tag)


@router.patch(
    "/tags/{tag_id}", response_model=TagBrief, responses=problems(403, 404, 409, 412, 428)
)
async def update_tag(
    tag_id: int,
    body: TagUpdate,
    version: IfMatch,
    _: Admin,
    session: SessionDep,
    response: Response,
) -> TagBrief:
    """Rename or reorder a tag."""
    tag = await service.update_tag(session, tag_id, version, body)
    set_etag(response, tag.version)
    return TagBrief.model_validate(tag)


@router.delete(
    "/tags/{tag_id}", status_code=NO_CONTENT, responses=problems(403, 404, 409, 412, 428)
)
async def delete_tag(tag_id: int, version: IfMatch, _: Admin, session: SessionDep) -> Response:
    """Delete a tag that was never assigned."""
    await service.delete_tag(session, tag_id, version)
    return Response(status_code=NO_CONTENT)
