"""Shared schema pieces: strict input base, cursor pages, small references."""

from __future__ import annotations

import datetime as dt
import re
import types
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

T = TypeVar("T")

_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _scalar_type(annotation: Any) -> Any:
    """``bool`` for ``bool``, ``bool | None`` and ``Annotated[bool, ...]``; else the annotation."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return _scalar_type(members[0])
    return annotation


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


class InputModel(BaseModel):
    """Request bodies: unknown fields are an error (no mass assignment), strings are trimmed.

    Scalars keep the JSON type the document gives them: pydantic alone would take `0` for
    `false`, `false` for `0`, and a number for a date or time (a Unix timestamp)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nul_characters(cls, data: Any) -> Any:
        # PostgreSQL text cannot hold U+0000: refuse it here rather than fail when storing.
        if _has_nul(data):
            raise ValueError("text must not contain NUL (U+0000) characters")
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _no_type_juggling(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name is None or value is None:
            return value
        wanted = _scalar_type(cls.model_fields[info.field_name].annotation)
        if wanted is bool and not isinstance(value, bool):
            raise ValueError("must be true or false")
        if wanted in (int, float, Decimal) and isinstance(value, bool):
            raise ValueError("must be a number, not true or false")
        if wanted in (dt.date, dt.datetime) and (
            isinstance(value, int | float)
            or (isinstance(value, str) and not _ISO_DAY.match(value.strip()))
        ):
            raise ValueError("must be an ISO 8601 date (YYYY-MM-DD) or date-time")
        return value


class OutputModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(OutputModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null on the last page."
    )


class UserRef(OutputModel):
    id: int
    display_name: str
