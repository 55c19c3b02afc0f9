"""Bits every router uses: documented problem responses and ETag helpers."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from fastapi import Response
from pydantic import BeforeValidator

from app.deps import etag_for

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
