"""Organisation admin: departments (a tree), users and roles (SPEC A3)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app import access
from app.access import Principal
from app.errors import Conflict, NotFound, ValidationFailed, field_error
from app.models import Customer, Department, RefreshToken, Role, User, user_roles
from app.models.base import utcnow
from app.schemas.org import (
    DepartmentCreate,
    DepartmentUpdate,
    RoleCreate,
    RoleUpdate,
    UserCreate,
    UserUpdate,
)
from app.security import hash_password
from app.services.normalize import escape_like
from app.services.versions import check_version

# --- departments -------------------------------------------------------------------------------


async def list_departments(session: AsyncSession) -> list[Department]:
    return list((await session.scalars(select(Department).order_by(Department.path))).all())


async def get_department(session: AsyncSession, department_id: int) -> Department:
    department = await session.get(Department, department_id)
    if department is None:
        raise NotFound(f"department {department_id} not found")
    return department


async def _user_exists(session: AsyncSession, user_id: int, field: str) -> None:
    if await session.get(User, user_id) is None:
        raise ValidationFailed(errors=[field_error(field, "no such user")])


async def create_department(session: AsyncSession, data: DepartmentCreate) -> Department:
    parent_path = "/"
    if data.parent_id is not None:
        parent = await session.get(Department, data.parent_id)
        if parent is None:
            raise ValidationFailed(errors=[field_error("parent_id", "no such department")])
        parent_path = parent.path
    if data.manager_id is not None:
        await _user_exists(session, data.manager_id, "manager_id")
    department = Department(name=data.name, parent_id=data.parent_id, manager_id=data.manager_id)
    session.add(department)
    await session.flush()
    department.path = f"{parent_path}{department.id}/"
    await session.flush()
    return department


async def update_department(
    session: AsyncSession, department_id: int, version: int, data: DepartmentUpdate
) -> Department:
    department = await get_department(session, department_id)
    check_version(department, version)
    changes = data.model_dump(exclude_unset=True)
    if "name" in changes:
        if changes["name"] is None:
            raise ValidationFailed(errors=[field_error("name", "cannot be null")])
        department.name = changes["name"]
    if "manager_id" in changes:
        if changes["manager_id"] is not None:
            await _user_exists(session, changes["manager_id"], "manager_id")
        department.manager_id = changes["manager_id"]
    if "parent_id" in changes and changes["parent_id"] != department.parent_id:
        new_parent_path = "/"
        if changes["parent_id"] is not None:
            parent = await session.get(Department, changes["parent_id"])
            if parent is None:
                raise ValidationFailed(errors=[field_error("parent_id", "no such department")])
            if parent.path.startswith(department.path):
                raise ValidationFailed(
                    errors=[field_error("parent_id", "a department cannot move under itself")]
                )
            new_parent_path = parent.path
        old_path = department.path
        new_path = f"{new_parent_path}{department.id}/"
        # Re-root the whole subtree in one statement.
        await session.execute(
            update(Department)
            .where(Department.path.startswith(old_path, autoescape=True))
            .values(
                path=literal(new_path, String) + func.substr(Department.path, len(old_path) + 1)
            )
            .execution_options(synchronize_session=False)
        )
        department.parent_id = changes["parent_id"]
        await session.refresh(department)
    await session.flush()
    return department


async def delete_department(session: AsyncSession, department_id: int, version: int) -> None:
    department = await get_department(session, department_id)
    check_version(department, version)
    if await session.scalar(select(func.count()).where(Department.parent_id == department_id)):
        raise Conflict("the department has sub-departments")
    if await session.scalar(select(func.count()).where(User.department_id == department_id)):
        raise Conflict("the department has users; move them first")
    await session.delete(department)
    await session.flush()


# --- roles -------------------------------------------------------------------------------------


async def list_roles(session: AsyncSession) -> list[Role]:
    return list((await session.scalars(select(Role).order_by(Role.id))).all())


async def get_role(session: AsyncSession, role_id: int) -> Role:
    role = await session.get(Role, role_id)
    if role is None:
        raise NotFound(f"role {role_id} not found")
    return role


async def create_role(session: AsyncSession, data: RoleCreate) -> Role:
    if await session.scalar(select(Role.id).where(Role.name == data.name)) is not None:
        raise Conflict(f"role {data.name!r} exists", errors=[field_error("name", "taken")])
    role = Role(
        name=data.name,
        description=data.description,
        permissions=data.permissions,
        scopes={k: v.value for k, v in data.scopes.items()},
        max_owned_customers=data.max_owned_customers,
        max_locked_customers=data.max_locked_customers,
    )
    session.add(role)
    await session.flush()
    return role


async def update_role(session: AsyncSession, role_id: int, version: int, data: RoleUpdate) -> Role:
    role = await get_role(session, role_id)
    check_version(role, version)
    changes = data.model_dump(exclude_unset=True)
    for key, value in changes.items():
        if value is None and key not in CAP_FIELDS:
            raise ValidationFailed(errors=[field_error(key, "cannot be null")])
    if "name" in changes and changes["name"] != role.name:
        if await session.scalar(select(Role.id).where(Role.name == changes["name"])) is not None:
            raise Conflict(
                f"role {changes['name']!r} exists", errors=[field_error("name", "taken")]
            )
        role.name = changes["name"]
    if "description" in changes:
        role.description = changes["description"]
    if "permissions" in changes:
        role.permissions = changes["permissions"]
    if "scopes" in changes:
        role.scopes = {k: str(v) for k, v in changes["scopes"].items()}
    for key in CAP_FIELDS:
        if key in changes:
            setattr(role, key, changes[key])
    await session.flush()
    return role


async def delete_role(session: AsyncSession, role_id: int, version: int) -> None:
    role = await get_role(session, role_id)
    check_version(role, version)
    if role.is_system:
        raise Conflict("built-in roles cannot be deleted")
    if await session.scalar(select(func.count()).where(user_roles.c.role_id == role_id)):
        raise Conflict("the role is assigned to users")
    await session.delete(role)
    await session.flush()


# --- users -------------------------------------------------------------------------------------

# Per-user / per-role caps on customers (B7); null is a value here: "no cap".
CAP_FIELDS = ("max_owned_customers", "max_locked_customers")


async def list_users(session: AsyncSession) -> list[User]:
    rows = await session.scalars(select(User).options(selectinload(User.roles)).order_by(User.id))
    return list(rows.all())


async def directory(
    session: AsyncSession, principal: Principal, *, q: str | None, limit: int
) -> list[dict[str, Any]]:
    """Active users (id, name, department) by name, and whether the caller's scope covers them."""
    in_scope = access.owner_in_scope(principal, "customer", User.id).label("in_scope")
    stmt = (
        select(User.id, User.display_name, Department.id, Department.name, in_scope)
        .outerjoin(Department, Department.id == User.department_id)
        .where(User.is_active.is_(True))
        .order_by(User.display_name, User.id)
        .limit(limit)
    )
    if q and q.strip():
        stmt = stmt.where(User.display_name.ilike(f"%{escape_like(q.strip())}%", escape="\\"))
    return [
        {
            "id": uid,
            "display_name": name,
            "department": {"id": dept_id, "name": dept_name} if dept_id is not None else None,
            "in_scope": bool(scoped),
        }
        for uid, name, dept_id, dept_name, scoped in (await session.execute(stmt)).all()
    ]


async def get_user(session: AsyncSession, user_id: int) -> User:
    user = await session.scalar(
        select(User).options(selectinload(User.roles)).where(User.id == user_id)
    )
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


async def _roles(session: AsyncSession, role_ids: list[int]) -> list[Role]:
    roles = list((await session.scalars(select(Role).where(Role.id.in_(role_ids)))).all())
    missing = sorted(set(role_ids) - {r.id for r in roles})
    if missing:
        raise ValidationFailed(errors=[field_error("role_ids", f"no such roles: {missing}")])
    return roles


async def create_user(session: AsyncSession, data: UserCreate) -> User:
    username = data.username.lower()
    if await session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"username {username!r} is taken", errors=[field_error("username", "taken")])
    if data.department_id is not None and await session.get(Department, data.department_id) is None:
        raise ValidationFailed(errors=[field_error("department_id", "no such department")])
    user = User(
        username=username,
        display_name=data.display_name,
        email=data.email,
        phone=data.phone,
        department_id=data.department_id,
        password_hash=await hash_password(data.password),
        locale=data.locale,
        timezone=data.timezone,
        max_owned_customers=data.max_owned_customers,
        max_locked_customers=data.max_locked_customers,
        roles=await _roles(session, data.role_ids),
    )
    session.add(user)
    await session.flush()
    return await get_user(session, user.id)


async def update_user(session: AsyncSession, user_id: int, version: int, data: UserUpdate) -> User:
    user = await get_user(session, user_id)
    check_version(user, version)
    changes = data.model_dump(exclude_unset=True)
    for key in ("display_name", "password", "role_ids", "is_active", "locale", "timezone"):
        if key in changes and changes[key] is None:
            raise ValidationFailed(errors=[field_error(key, "cannot be null")])
    if changes.get("department_id") is not None and (
        await session.get(Department, changes["department_id"]) is None
    ):
        raise ValidationFailed(errors=[field_error("department_id", "no such department")])
    if changes.get("is_active") is False:
        await deactivate_user(session, user)
    elif "password" in changes:
        await revoke_refresh_tokens(session, user_id)
    if "password" in changes:
        user.password_hash = await hash_password(changes.pop("password"))
    if "role_ids" in changes:
        user.roles = await _roles(session, changes.pop("role_ids"))
    for key, value in changes.items():
        setattr(user, key, value)
    await session.flush()
    return await get_user(session, user.id)


async def revoke_refresh_tokens(session: AsyncSession, user_id: int) -> None:
    """End every session of the user: their refresh tokens stop working (access tokens lapse)."""
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def deactivate_user(session: AsyncSession, user: User) -> None:
    """Deactivate a user: refused while they own live customers (offboard them, or transfer
    those first); their refresh tokens are revoked and an inactive user's access tokens are
    refused on the next request (the principal is loaded per request)."""
    owned = await session.scalar(
        select(func.count())
        .select_from(Customer)
        .where(Customer.owner_id == user.id, Customer.deleted_at.is_(None))
    )
    if owned:
        raise Conflict(f"the user still owns {owned} customers; transfer them first")
    await revoke_refresh_tokens(session, user.id)
    user.is_active = False
