"""Auto-tag rules (SPEC H10): define, preview and run rules that give or take a tag (admins)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Response, status

from app.access import Principal
from app.deps import AnalyticsDep, IfMatch, SessionDep, SettingsDep, require
from app.routers.common import ETAG_HEADER, WITH_ETAG, ApiRouter, problems, set_etag
from app.schemas.tag_rule import (
    TagRuleCreate,
    TagRuleOut,
    TagRulePreviewIn,
    TagRulePreviewOut,
    TagRuleRunOut,
    TagRuleUpdate,
)
from app.services import tag_rules as service

router = ApiRouter(tags=["tag rules"])
Admin = Annotated[Principal, Depends(require("config.manage"))]
SCOPE_DOC = (
    " Only customers you may read are listed and changed; metrics such as RFM quintiles are "
    "computed over all customers, so a rule means the same whoever runs it."
)


@router.get("/tag-rules", response_model=list[TagRuleOut], responses=problems(403))
async def list_tag_rules(_: Admin, session: SessionDep) -> list[TagRuleOut]:
    """Auto-tag rules, oldest first."""
    return [TagRuleOut.model_validate(r) for r in await service.list_rules(session)]


@router.post(
    "/tag-rules",
    response_model=TagRuleOut,
    status_code=status.HTTP_201_CREATED,
    responses={**problems(403, 409), 201: {"headers": ETAG_HEADER}},
)
async def create_tag_rule(
    body: TagRuleCreate, principal: Admin, session: SessionDep, response: Response
) -> TagRuleOut:
    """Define a rule; fields, operators and values are checked (422 names each problem)."""
    rule = await service.create_rule(session, principal, body)
    set_etag(response, rule.version)
    response.headers["Location"] = f"/api/v1/tag-rules/{rule.id}"
    return TagRuleOut.model_validate(rule)


@router.post(
    "/tag-rules/preview",
    response_model=TagRulePreviewOut,
    responses=problems(403),
    description="Which customers an unsaved rule would change now: counts and the first 50 of "
    "each direction." + SCOPE_DOC,
)
async def preview_tag_rule_body(
    body: TagRulePreviewIn,
    principal: Admin,
    session: SessionDep,
    store: AnalyticsDep,
    settings: SettingsDep,
) -> TagRulePreviewOut:
    """Preview an unsaved rule."""
    result = await service.preview(session, store, principal, body, settings.business_timezone)
    return TagRulePreviewOut.model_validate(result)


@router.get(
    "/tag-rules/{rule_id:int}",
    response_model=TagRuleOut,
    responses={**problems(403, 404), **WITH_ETAG},
)
async def get_tag_rule(
    rule_id: int, _: Admin, session: SessionDep, response: Response
) -> TagRuleOut:
    """One rule with the counts of its last run."""
    rule = await service.get_rule(session, rule_id)
    set_etag(response, rule.version)
    return TagRuleOut.model_validate(rule)


@router.patch(
    "/tag-rules/{rule_id:int}",
    response_model=TagRuleOut,
    responses={**problems(403, 404, 409, 412, 428), **WITH_ETAG},
)
async def update_tag_rule(
    rule_id: int,
    body: TagRuleUpdate,
    version: IfMatch,
    _: Admin,
    session: SessionDep,
    response: Response,
) -> TagRuleOut:
    """Change a rule (If-Match); `conditions`, when given, replace the old ones."""
    rule = await service.update_rule(session, rule_id, version, body)
    set_etag(response, rule.version)
    return TagRuleOut.model_validate(rule)


@router.delete(
    "/tag-rules/{rule_id:int}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(403, 404, 412, 428),
)
async def delete_tag_rule(
    rule_id: int, version: IfMatch, _: Admin, session: SessionDep
) -> Response:
    """Delete a rule; the tags it gave or took stay."""
    await service.delete_rule(session, rule_id, version)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/tag-rules/{rule_id}/preview",
    response_model=TagRulePreviewOut,
    responses=problems(403, 404),
    description="Which customers the saved rule would change now." + SCOPE_DOC,
)
async def preview_tag_rule(
    rule_id: int,
    principal: Admin,
    session: SessionDep,
    store: AnalyticsDep,
    settings: SettingsDep,
) -> TagRulePreviewOut:
    """Preview a saved rule."""
    result = await service.preview_rule(
        session, store, principal, rule_id, settings.business_timezone
    )
    return TagRulePreviewOut.model_validate(result)


@router.post(
    "/tag-rules/{rule_id}/run",
    response_model=TagRuleRunOut,
    responses=problems(403, 404),
    description="Apply the rule now (enabled or not) and record the counts as its last run."
    + SCOPE_DOC,
)
async def run_tag_rule(
    rule_id: int,
    principal: Admin,
    session: SessionDep,
    store: AnalyticsDep,
    settings: SettingsDep,
) -> TagRuleRunOut:
    """Run a rule now."""
    result = await service.run_rule(session, store, principal, rule_id, settings.business_timezone)
    return TagRuleRunOut.model_validate(result)
