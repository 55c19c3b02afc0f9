"""Bits every router uses: the router class, documented problem responses and ETag helpers."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Coroutine, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, BeforeValidator
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from app.access import StaleAccess
from app.deps import etag_for

API_PREFIX = "/api/v1"
_API_PATHS = API_PREFIX + "/"


class ApiRouter(APIRouter):
    """A router of the API, included in the app at ``API_PREFIX``, that declines a request at
    once when none of its routes starts with the request path's first segment after the prefix.

    FastAPI tries every route of every included router in turn, a few microseconds each, until
    one matches: a route of the 20th router was reached after some 190 others, about a
    millisecond a request (ADR 0013). Declining by first segment leaves the order, and so which
    route answers, as it was: a router whose routes could match the path is still asked.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Computed on first use and again whenever routes were added since.
        self._heads: tuple[int, frozenset[str] | None] = (-1, None)

    def heads(self) -> frozenset[str] | None:
        """The first path segments of this router's routes; None when one starts with a
        parameter (it may match any path)."""
        counted, heads = self._heads
        if counted != len(self.routes):
            heads = _first_segments(self.routes)
            self._heads = (len(self.routes), heads)
        return heads

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        heads = self.heads()
        if heads is not None:
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            if not path.startswith(_API_PATHS):
                return Match.NONE, {}
            if path[len(_API_PATHS) :].partition("/")[0] not in heads:
                return Match.NONE, {}
        return super().matches(scope)

    def direct_get(self, path: str, **kwargs: Any) -> Callable[[Any], Any]:
        """``get``, as a ``DirectRoute``."""

        def add(endpoint: Callable[..., Any]) -> Callable[..., Any]:
            self.add_api_route(
                path, endpoint, methods=["GET"], route_class_override=DirectRoute, **kwargs
            )
            return endpoint

        return add


class DirectRoute(APIRoute):
    """A route that FastAPI documents but whose dependencies it does not solve (ADR 0014).

    Its endpoint takes the request and the path's parameters (as the path's convertors made
    them) and answers with a ``Response``; it reads through ``deps.direct_read``, which
    authenticates and guards the caller as the router's dependencies would. Those dependencies,
    the endpoint's parameters and its response model still make the OpenAPI document. For the
    hottest reads: solving a customer read's dependencies took a fifth of its time.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # An API key's resource for this route's scope (None: keys may not call it); set where
        # the router is included (app.main), which makes the route callable.
        self.resource: str | None = None
        self.guarded = False

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint

        async def handle(request: Request) -> Response:
            try:
                response: Response = await endpoint(request, **request.path_params)
            except StaleAccess:
                # The caller's access changed since its principal was kept: served again with
                # one built anew (``deps.direct_read``).
                request.state.access_stale = True
                response = await endpoint(request, **request.path_params)
            return response

        return handle


def json_response(model: BaseModel, headers: Mapping[str, str]) -> Response:
    """``model`` as FastAPI answers with a response model: its JSON by alias."""
    return Response(
        model.__pydantic_serializer__.to_json(model, by_alias=True),
        media_type="application/json",
        headers=dict(headers),
    )


def _first_segments(routes: list[BaseRoute]) -> frozenset[str] | None:
    heads = set()
    for route in routes:
        path = getattr(route, "path", None)
        if path is None:
            return None
        head = path.lstrip("/").partition("/")[0]
        if "{" in head:
            return None
        heads.add(head)
    return frozenset(heads)


_DESCRIPTIONS = {
    400: "Bad request",
    401: "Not authenticated (missing, expired or invalid token)",
    403: "Authenticated but not allowed",
    404: "Not found, or outside your data scope",
    409: "Conflict with the current state",
    412: "If-Match does not match the current version",
    422: "Invalid input (field errors in `errors`)",
    428: "If-Match header required",
    429: "Too many requests (see Retry-After)",
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the given problem statuses (plus 401 and 422 always)."""
    wanted = sorted({401, 422, *codes})
    return {
        code: {
            "description": _DESCRIPTIONS[code],
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
        }
        for code in wanted
    }


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag_for(version)


ETAG_HEADER = {
    "ETag": {
        "description": "Version of the record; send it back as If-Match.",
        "schema": {"type": "string"},
    }
}
# `responses` entry for reads that carry an ETag.
WITH_ETAG: dict[int | str, dict[str, Any]] = {200: {"headers": ETAG_HEADER}}


_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_8601(value: Any) -> Any:
    """Query dates and times are ISO 8601 text: pydantic alone also reads a number as a Unix
    timestamp (``date_to=0`` as 1970-01-01), which the documented ``format`` does not allow."""
    if isinstance(value, str) and not _ISO_DAY.match(value):
        raise ValueError("expected an ISO 8601 date (YYYY-MM-DD) or date-time")
    return value


# Query parameter types: a date / date-time in ISO 8601 only.
QueryDate = Annotated[dt.date, BeforeValidator(_iso_8601)]
QueryDateTime = Annotated[dt.datetime, BeforeValidator(_iso_8601)]
