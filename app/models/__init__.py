"""All models, imported so that ``Base.metadata`` knows every table (Alembic reads it)."""

from app.models.activity import FollowUp, Visit
from app.models.audit import AuditEvent
from app.models.contract import (
    Contract,
    ContractLine,
    NumberSequence,
    Order,
    OrderLine,
    Payment,
    PaymentPlan,
)
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
from app.models.integration import ApiKey, RateLimitCounter
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
    Target,
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
from app.models.pool import ClaimCounter, OwnershipEvent, Pool, PoolMember, PoolRule
from app.models.tag_rule import TagRule

__all__ = [
    "ApiKey",
    "AuditEvent",
    "ClaimCounter",
    "Contact",
    "Contract",
    "ContractLine",
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
    "NumberSequence",
    "Opportunity",
    "OpportunityHistory",
    "OpportunityLine",
    "Order",
    "OrderLine",
    "OwnershipEvent",
    "Payment",
    "PaymentPlan",
    "Pipeline",
    "PipelineStage",
    "Pool",
    "PoolMember",
    "PoolRule",
    "Product",
    "PushDelivery",
    "PushSubscription",
    "RateLimitCounter",
    "RefreshToken",
    "Reminder",
    "Role",
    "SystemSetting",
    "Tag",
    "TagGroup",
    "TagRule",
    "Target",
    "User",
    "Visit",
    "user_roles",
]
