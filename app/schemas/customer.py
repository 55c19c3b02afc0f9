from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from app.access import FieldLevel
from app.schemas.common import InputModel, OutputModel, UserRef

Kind = Literal["company", "person"]
Level = Literal["A", "B", "C"]
Gender = Literal["male", "female"]
DealStatus = Literal["none", "signed"]

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
PHONE_PATTERN = r"^\+?[0-9][0-9 \-()]{4,30}$"

Phones = list[str]


def _check_phones(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    from app.services.normalize import normalize_phone

    cleaned: list[str] = []
    for raw in value:
        number = normalize_phone(raw)
        if number is None:
            raise ValueError(f"not a phone number: {raw!r}")
        if number not in cleaned:
            cleaned.append(number)
    return cleaned


def _check_birth_date(value: dt.date | None) -> dt.date | None:
    if value is not None and not (dt.date(1900, 1, 1) <= value <= dt.date.today()):
        raise ValueError("birth date must lie between 1900-01-01 and today")
    return value


class CustomerFields(InputModel):
    kind: Kind = "company"
    phones: list[str] = Field(default_factory=list, max_length=10)
    email: str | None = Field(default=None, max_length=254, pattern=EMAIL_PATTERN)
    province: str | None = Field(default=None, max_length=50)
    city: str | None = Field(default=None, max_length=50)
    address: str | None = Field(default=None, max_length=300)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lng: float | None = Field(default=None, ge=-180, le=180)
    industry: str | None = Field(default=None, max_length=50)
    source: str | None = Field(default=None, max_length=50)
    level: Level | None = None
    gender: Gender | None = None
    birth_date: dt.date | None = None
    notes: str | None = Field(default=None, max_length=5000)
    next_follow_up_at: dt.datetime | None = None
    tag_ids: list[int] = Field(default_factory=list, max_length=100)
    custom_fields: dict[str, Any] = Field(default_factory=dict, max_length=100)

    _phones = field_validator("phones")(_check_phones)
    _birth = field_validator("birth_date")(_check_birth_date)

    @field_validator("next_follow_up_at")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2026-11-23T09:00:00+08:00)")
        return value

    @model_validator(mode="after")
    def _location_pair(self) -> CustomerFields:
        if (self.lat is None) != (self.lng is None):
            raise ValueError("lat and lng go together")
        return self


class CustomerCreate(CustomerFields):
    name: str = Field(min_length=1, max_length=200)
    owner_id: int | None = Field(
        default=None,
        description="Owner of the new customer; defaults to the caller. Only callers whose data "
        "scope covers that user may set it.",
    )
    confirm_duplicate: bool = Field(
        default=False, description="Create even though possible duplicates exist (after a 409)."
    )


class CustomerUpdate(InputModel):
    """Only the fields present are changed; ``null`` clears an optional field."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    kind: Kind | None = None
    phones: list[str] | None = Field(default=None, max_length=10)
    email: str | None = Field(default=None, max_length=254, pattern=EMAIL_PATTERN)
    province: str | None = Field(default=None, max_length=50)
    city: str | None = Field(default=None, max_length=50)
    address: str | None = Field(default=None, max_length=300)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lng: float | None = Field(default=None, ge=-180, le=180)
    industry: str | None = Field(default=None, max_length=50)
    source: str | None = Field(default=None, max_length=50)
    level: Level | None = None
    gender: Gender | None = None
    birth_date: dt.date | None = None
    notes: str | None = Field(default=None, max_length=5000)
    next_follow_up_at: dt.datetime | None = None
    tag_ids: list[int] | None = Field(default=None, max_length=100)
    custom_fields: dict[str, Any] | None = Field(
        default=None, max_length=100, description="Keys given are set (null removes one)."
    )

    _phones = field_validator("phones")(_check_phones)
    _birth = field_validator("birth_date")(_check_birth_date)

    @model_validator(mode="after")
    def _not_null(self) -> CustomerUpdate:
        for name in ("name", "kind", "phones", "tag_ids"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        if ("lat" in self.model_fields_set) != ("lng" in self.model_fields_set):
            raise ValueError("lat and lng go together")
        if (self.lat is None) != (self.lng is None):
            raise ValueError("lat and lng go together")
        if self.next_follow_up_at is not None and self.next_follow_up_at.tzinfo is None:
            raise ValueError("next_follow_up_at needs a time zone")
        return self


class TagOut(OutputModel):
    id: int
    name: str
    group_id: int
    group_name: str
    color: str | None = None


class CustomerOut(OutputModel):
    id: int
    name: str
    kind: Kind
    phones: list[str]
    email: str | None
    province: str | None
    city: str | None
    address: str | None
    lat: float | None
    lng: float | None
    industry: str | None
    source: str | None
    level: Level | None
    gender: Gender | None
    birth_date: dt.date | None
    notes: str | None
    owner: UserRef | None
    deal_status: DealStatus
    signed_at: dt.datetime | None
    last_follow_up_at: dt.datetime | None
    next_follow_up_at: dt.datetime | None
    tags: list[TagOut]
    custom_fields: dict[str, Any]
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    distance_km: float | None = Field(
        default=None,
        description="Distance from the `near` point, when the list was asked with one.",
    )
    pool_id: int | None = Field(
        default=None, description="The pool the customer sits in (then it has no owner)."
    )
    pooled_at: dt.datetime | None = None
    pool_reason: str | None = Field(
        default=None, description='Why it went to the pool, e.g. "no follow-up for 30 days".'
    )
    locked_at: dt.datetime | None = Field(
        default=None, description="Set while the customer is locked (never reclaimed)."
    )
    hidden_fields: list[str] = Field(
        default_factory=list,
        description="Fields withheld from you by the customer's pool (their values are empty).",
    )
    field_levels: dict[str, FieldLevel] = Field(
        default_factory=dict,
        description="Your level of each personal field of this customer and its contacts that "
        "you may not edit — `hidden` (empty), `masked`, `read` — from your roles and the "
        "customer's pool; fields not listed are `edit` (see docs/api.md, field permissions).",
    )


class DuplicateMatch(OutputModel):
    id: int | None = Field(description="Null when the match is outside your data scope.")
    name: str = Field(description="Masked when the match is outside your data scope.")
    owner_name: str | None
    matched_on: list[Literal["phone", "email", "name"]]
    similarity: float = Field(description="Name similarity 0–1 (1 for phone/e-mail matches).")
    visible: bool
    in_recycle_bin: bool
    phones: list[str]
    email: str | None


class DuplicateCheckOut(OutputModel):
    matches: list[DuplicateMatch]


class FacetsOut(OutputModel):
    industries: list[str]
    sources: list[str]
    provinces: list[str]
    cities: list[str]
    levels: list[str]


class TimelineEventOut(OutputModel):
    id: int
    at: dt.datetime
    actor: UserRef | None
    action: str
    entity: str
    entity_id: int
    changes: dict[str, Any]


class ContactCreate(InputModel):
    name: str = Field(min_length=1, max_length=100)
    title: str | None = Field(default=None, max_length=100)
    phones: list[str] = Field(default_factory=list, max_length=10)
    email: str | None = Field(default=None, max_length=254, pattern=EMAIL_PATTERN)
    wechat: str | None = Field(default=None, max_length=100)
    is_primary: bool = False
    birth_date: dt.date | None = None
    notes: str | None = Field(default=None, max_length=5000)

    _phones = field_validator("phones")(_check_phones)
    _birth = field_validator("birth_date")(_check_birth_date)


class ContactUpdate(InputModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    title: str | None = Field(default=None, max_length=100)
    phones: list[str] | None = Field(default=None, max_length=10)
    email: str | None = Field(default=None, max_length=254, pattern=EMAIL_PATTERN)
    wechat: str | None = Field(default=None, max_length=100)
    is_primary: bool | None = None
    birth_date: dt.date | None = None
    notes: str | None = Field(default=None, max_length=5000)

    _phones = field_validator("phones")(_check_phones)
    _birth = field_validator("birth_date")(_check_birth_date)

    @model_validator(mode="after")
    def _not_null(self) -> ContactUpdate:
        for name in ("name", "phones", "is_primary"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class ContactOut(OutputModel):
    id: int
    customer_id: int
    name: str
    title: str | None
    phones: list[str]
    email: str | None
    wechat: str | None
    is_primary: bool
    birth_date: dt.date | None
    notes: str | None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime
