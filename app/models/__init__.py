"""All models, imported so that ``Base.metadata`` knows every table (Alembic reads it)."""

from app.models.activity import FollowUp, Visit
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
from app.models.notification import (
    Notification,
    NotificationSettings,
    PushDelivery,
    PushSubscription,
    Reminder,
)
from app.models.opportunity import (
    LostReason,
    Opportunity,
    OpportunityHistory,
    OpportunityLine,
    Pipeline,
    PipelineStage,
    Product,
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
    "FollowUp",
    "IdempotencyRecord",
    "LoginAttempt",
    "LostReason",
    "Notification",
    "NotificationSettings",
    "Opportunity",
    "OpportunityHistory",
    "OpportunityLine",
    "Pipeline",
    "PipelineStage",
    "Product",
    "PushDelivery",
    "PushSubscription",
    "RefreshToken",
    "Reminder",
    "Role",
    "SystemSetting",
    "Tag",
    "TagGroup",
    "User",
    "Visit",
    "user_roles",
]
