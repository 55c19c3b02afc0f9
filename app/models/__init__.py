"""All models, imported so that ``Base.metadata`` knows every table (Alembic reads it)."""

from app.models.audit import AuditEvent
from app.models.customer import (
    Contact,
    Customer,
    CustomerPhone,
    CustomerTag,
    CustomerTeamMember,
    CustomFieldDefinition,
    Tag,
    TagGroup,
)
from app.models.org import (
    Department,
    IdempotencyRecord,
    LoginAttempt,
    RefreshToken,
    Role,
    SystemSetting,
    User,
    user_roles,
)

__all__ = [
    "AuditEvent",
    "Contact",
    "CustomFieldDefinition",
    "Customer",
    "CustomerPhone",
    "CustomerTag",
    "CustomerTeamMember",
    "Department",
    "IdempotencyRecord",
    "LoginAttempt",
    "RefreshToken",
    "Role",
    "SystemSetting",
    "Tag",
    "TagGroup",
    "User",
    "user_roles",
]
