from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import Field, field_validator

from app.access import PERMISSIONS, SCOPED_ENTITIES, DataScope
from app.schemas.auth import RoleRef
from app.schemas.common import InputModel, OutputModel

Username = Annotated[str, Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
Password = Annotated[str, Field(min_length=8, max_length=128)]
# Caps on customers (B7): null means no cap here. A user's own value overrides their roles';
# without one, the most generous of their roles applies (a role without a cap: unlimited).
Cap = Annotated[int | None, Field(ge=0, le=1_000_000)]
OWNED_CAP_DOC = "Most live customers a holder may own; null: no cap."
LOCKED_CAP_DOC = "Most customers a holder may lock; null: no cap."


class DepartmentCreate(InputModel):
    name: str = Field(min_length=1, max_length=100)
    parent_id: int | None = None
    manager_id: int | None = None


class DepartmentUpdate(InputModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    parent_id: int | None = None
    manager_id: int | None = None


class DepartmentOut(OutputModel):
    id: int
    name: str
    parent_id: int | None
    manager_id: int | None
    path: str
    version: int


def _check_permissions(value: list[str]) -> list[str]:
    unknown = sorted(set(value) - set(PERMISSIONS))
    if unknown:
        raise ValueError(f"unknown permissions: {', '.join(unknown)}")
    return sorted(set(value))


def _check_scopes(value: dict[str, DataScope]) -> dict[str, DataScope]:
    unknown = sorted(set(value) - set(SCOPED_ENTITIES))
    if unknown:
        raise ValueError(f"unknown entities: {', '.join(unknown)}")
    return value


class RoleCreate(InputModel):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=500)
    permissions: list[str] = Field(default_factory=list)
    scopes: dict[str, DataScope] = Field(default_factory=dict)
    max_owned_customers: Cap = Field(default=None, description=OWNED_CAP_DOC)
    max_locked_customers: Cap = Field(default=None, description=LOCKED_CAP_DOC)

    _perm = field_validator("permissions")(_check_permissions)
    _scope = field_validator("scopes")(_check_scopes)


class RoleUpdate(InputModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)
    permissions: list[str] | None = None
    scopes: dict[str, DataScope] | None = None
    max_owned_customers: Cap = Field(default=None, description=OWNED_CAP_DOC)
    max_locked_customers: Cap = Field(default=None, description=LOCKED_CAP_DOC)

    @field_validator("permissions")
    @classmethod
    def _perm(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_permissions(value)

    @field_validator("scopes")
    @classmethod
    def _scope(cls, value: dict[str, DataScope] | None) -> dict[str, DataScope] | None:
        return None if value is None else _check_scopes(value)


class RoleOut(OutputModel):
    id: int
    name: str
    description: str
    permissions: list[str]
    scopes: dict[str, str]
    is_system: bool
    max_owned_customers: int | None = Field(description=OWNED_CAP_DOC)
    max_locked_customers: int | None = Field(description=LOCKED_CAP_DOC)
    version: int


class UserCreate(InputModel):
    username: Username
    display_name: str = Field(min_length=1, max_length=100)
    password: Password
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str | None = Field(default=None, max_length=32)
    department_id: int | None = None
    role_ids: list[int] = Field(default_factory=list, max_length=20)
    locale: str = Field(default="zh-CN", pattern=r"^(zh-CN|en)$")
    timezone: str = Field(default="Asia/Shanghai", max_length=64)
    max_owned_customers: Cap = Field(
        default=None, description=OWNED_CAP_DOC + " Overrides the roles' caps."
    )
    max_locked_customers: Cap = Field(
        default=None, description=LOCKED_CAP_DOC + " Overrides the roles' caps."
    )


class UserUpdate(InputModel):
    display_name: str | None = Field(default=None, min_length=1, max_length=100)
    password: Password | None = None
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str | None = Field(default=None, max_length=32)
    department_id: int | None = None
    role_ids: list[int] | None = Field(default=None, max_length=20)
    is_active: bool | None = None
    locale: str | None = Field(default=None, pattern=r"^(zh-CN|en)$")
    timezone: str | None = Field(default=None, max_length=64)
    max_owned_customers: Cap = Field(
        default=None, description=OWNED_CAP_DOC + " Null: take the roles' caps."
    )
    max_locked_customers: Cap = Field(
        default=None, description=LOCKED_CAP_DOC + " Null: take the roles' caps."
    )


class UserOut(OutputModel):
    id: int
    username: str
    display_name: str
    email: str | None
    phone: str | None
    department_id: int | None
    is_active: bool
    locale: str
    timezone: str
    roles: list[RoleRef]
    max_owned_customers: int | None = Field(
        description="The user's own cap on owned customers (null: the roles')."
    )
    max_locked_customers: int | None = Field(
        description="The user's own cap on locked customers (null: the roles')."
    )
    created_at: dt.datetime
    version: int


class DirectoryDepartment(OutputModel):
    id: int
    name: str


class DirectoryEntry(OutputModel):
    id: int
    display_name: str
    department: DirectoryDepartment | None
    in_scope: bool
