"""Organisation admin: users, departments, roles (SPEC A3). Requires ``org.manage``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Response, status

from app.access import Principal
from app.deps import CurrentPrincipal, IfMatch, SessionDep, require
from app.models import User
from app.routers.common import WITH_ETAG, ApiRouter, problems, set_etag
from app.schemas.auth import RoleRef
from app.schemas.org import (
    DepartmentCreate,
    DepartmentOut,
    DepartmentUpdate,
    DirectoryEntry,
    RoleCreate,
    RoleOut,
    RoleUpdate,
    UserCreate,
    UserOut,
    UserUpdate,
)
from app.services import org as service

router = ApiRouter(tags=["organisation"])
Admin = Annotated[Principal, Depends(require("org.manage"))]
NO_CONTENT = status.HTTP_204_NO_CONTENT


def _user_out(user: User) -> UserOut:
    return UserOut.model_validate(
        {
            **{
                k: getattr(user, k)
                for k in (
                    "id",
                    "username",
                    "display_name",
                    "email",
                    "phone",
                    "department_id",
                    "is_active",
                    "locale",
                    "timezone",
                    "max_owned_customers",
                    "max_locked_customers",
                    "created_at",
                    "version",
                )
            },
            "roles": [RoleRef(id=r.id, name=r.name) for r in user.roles],
        }
    )


@router.get("/users", response_model=list[UserOut], responses=problems(403))
async def list_users(_: Admin, session: SessionDep) -> list[UserOut]:
    """All users with their roles."""
    return [_user_out(u) for u in await service.list_users(session)]


@router.get("/users/directory", response_model=list[DirectoryEntry], responses=problems())
async def user_directory(
    principal: CurrentPrincipal,
    session: SessionDep,
    q: Annotated[str | None, Query(max_length=100, description="Part of a name.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[DirectoryEntry]:
    """Active colleagues by name (any signed-in user): for picking an owner or a team member.
    `in_scope` says whether your data scope covers them (transfers need it)."""
    rows = await service.directory(session, principal, q=q, limit=limit)
    return [DirectoryEntry.model_validate(r) for r in rows]


@router.post("/users", response_model=UserOut, status_code=201, responses=problems(403, 409))
async def create_user(body: UserCreate, _: Admin, session: SessionDep) -> UserOut:
    """Create a user."""
    return _user_out(await service.create_user(session, body))


@router.get(
    "/users/{user_id:int}", response_model=UserOut, responses={**problems(403, 404), **WITH_ETAG}
)
async def get_user(user_id: int, _: Admin, session: SessionDep, response: Response) -> UserOut:
    """Read one user."""
    user = await service.get_user(session, user_id)
    set_etag(response, user.version)
    return _user_out(user)


@router.patch(
    "/users/{user_id:int}", response_model=UserOut, responses=problems(403, 404, 409, 412, 428)
)
async def update_user(
    user_id: int,
    body: UserUpdate,
    version: IfMatch,
    _: Admin,
    session: SessionDep,
    response: Response,
) -> UserOut:
    """Change a user: profile, password, department, roles, active flag."""
    user = await service.update_user(session, user_id, version, body)
    set_etag(response, user.version)
    return _user_out(user)


@router.get("/departments", response_model=list[DepartmentOut], responses=problems(403))
async def list_departments(_: Admin, session: SessionDep) -> list[DepartmentOut]:
    """All departments in tree order."""
    return [DepartmentOut.model_validate(d) for d in await service.list_departments(session)]


@router.post("/departments", response_model=DepartmentOut, status_code=201, responses=problems(403))
async def create_department(body: DepartmentCreate, _: Admin, session: SessionDep) -> DepartmentOut:
    """Create a department, optionally under a parent and with a manager."""
    return DepartmentOut.model_validate(await service.create_department(session, body))


@router.get(
    "/departments/{department_id}",
    response_model=DepartmentOut,
    responses={**problems(403, 404), **WITH_ETAG},
)
async def get_department(
    department_id: int, _: Admin, session: SessionDep, response: Response
) -> DepartmentOut:
    """Read one department."""
    department = await service.get_department(session, department_id)
    set_etag(response, department.version)
    return DepartmentOut.model_validate(department)


@router.patch(
    "/departments/{department_id}",
    response_model=DepartmentOut,
    responses=problems(403, 404, 412, 428),
)
async def update_department(
    department_id: int,
    body: DepartmentUpdate,
    version: IfMatch,
    _: Admin,
    session: SessionDep,
    response: Response,
) -> DepartmentOut:
    """Rename, move or change the manager of a department."""
    department = await service.update_department(session, department_id, version, body)
    set_etag(response, department.version)
    return DepartmentOut.model_validate(department)


@router.delete(
    "/departments/{department_id}",
    status_code=NO_CONTENT,
    responses=problems(403, 404, 409, 412, 428),
)
async def delete_department(
    department_id: int, version: IfMatch, _: Admin, session: SessionDep
) -> Response:
    """Delete an empty department."""
    await service.delete_department(session, department_id, version)
    return Response(status_code=NO_CONTENT)


@router.get("/roles", response_model=list[RoleOut], responses=problems(403))
async def list_roles(_: Admin, session: SessionDep) -> list[RoleOut]:
    """All roles."""
    return [RoleOut.model_validate(r) for r in await service.list_roles(session)]


@router.post("/roles", response_model=RoleOut, status_code=201, responses=problems(403, 409))
async def create_role(body: RoleCreate, _: Admin, session: SessionDep) -> RoleOut:
    """Create a role with permissions and data scopes."""
    return RoleOut.model_validate(await service.create_role(session, body))


@router.get(
    "/roles/{role_id}", response_model=RoleOut, responses={**problems(403, 404), **WITH_ETAG}
)
async def get_role(role_id: int, _: Admin, session: SessionDep, response: Response) -> RoleOut:
    """Read one role."""
    role = await service.get_role(session, role_id)
    set_etag(response, role.version)
    return RoleOut.model_validate(role)


@router.patch(
    "/roles/{role_id}", response_model=RoleOut, responses=problems(403, 404, 409, 412, 428)
)
async def update_role(
    role_id: int,
    body: RoleUpdate,
    version: IfMatch,
    _: Admin,
    session: SessionDep,
    response: Response,
) -> RoleOut:
    """Change a role's name, permissions or scopes."""
    role = await service.update_role(session, role_id, version, body)
    set_etag(response, role.version)
    return RoleOut.model_validate(role)


@router.delete(
    "/roles/{role_id}", status_code=NO_CONTENT, responses=problems(403, 404, 409, 412, 428)
)
async def delete_role(role_id: int, version: IfMatch, _: Admin, session: SessionDep) -> Response:
    """Delete an unused role."""
    await service.delete_role(session, role_id, version)
    return Response(status_code=NO_CONTENT)
