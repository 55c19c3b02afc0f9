"""Schemas for admin-defined configuration: custom fields, tag groups and tags."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from app.schemas.common import InputModel, OutputModel

FieldType = Literal["text", "number", "date", "single_select", "multi_select"]
SELECT_TYPES = ("single_select", "multi_select")


class CustomFieldCreate(InputModel):
    entity: Literal["customer"] = "customer"
    key: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    label: str = Field(min_length=1, max_length=100)
    type: FieldType
    options: list[str] = Field(default_factory=list, max_length=200)
    required: bool = False
    position: int = 0

    @model_validator(mode="after")
    def _options(self) -> CustomFieldCreate:
        if self.type in SELECT_TYPES and not self.options:
            raise ValueError("select fields need options")
        if self.type not in SELECT_TYPES and self.options:
            raise ValueError("only select fields take options")
        if len(set(self.options)) != len(self.options):
            raise ValueError("options must be distinct")
        return self


class CustomFieldUpdate(InputModel):
    label: str | None = Field(default=None, min_length=1, max_length=100)
    options: list[str] | None = Field(default=None, max_length=200)
    required: bool | None = None
    position: int | None = None


class CustomFieldOut(OutputModel):
    id: int
    entity: str
    key: str
    label: str
    type: FieldType
    options: list[str]
    required: bool
    position: int
    version: int


class TagGroupCreate(InputModel):
    name: str = Field(min_length=1, max_length=100)
    color: str | None = Field(default=None, pattern=r"^#[0-9a-fA-F]{6}$")
    exclusive: bool = False
    position: int = 0


class TagGroupUpdate(InputModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    color: str | None = Field(default=None, pattern=r"^#[0-9a-fA-F]{6}$")
    exclusive: bool | None = None
    position: int | None = None


class TagCreate(InputModel):
    group_id: int
    name: str = Field(min_length=1, max_length=100)
    position: int = 0


class TagUpdate(InputModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    position: int | None = None


class TagBrief(OutputModel):
    id: int
    group_id: int
    name: str
    position: int
    version: int


class TagGroupOut(OutputModel):
    id: int
    name: str
    color: str | None
    exclusive: bool
    position: int
    version: int
    tags: list[TagBrief]
