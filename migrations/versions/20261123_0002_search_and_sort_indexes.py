"""search and sort indexes: follow-up keyset indexes; trigram search on PostgreSQL

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 17:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGRAM = (
    ("ix_customers_name_trgm", "customers", "name"),
    ("ix_contacts_name_trgm", "contacts", "name"),
    ("ix_customer_phones_number_trgm", "customer_phones", "number"),
)
DESC_NULLS_LAST = (
    ("ix_customers_last_follow_up_desc", "last_follow_up_at"),
    ("ix_customers_next_follow_up_desc", "next_follow_up_at"),
)


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch_op:
        batch_op.drop_index("ix_customers_last_follow_up_at")
        batch_op.drop_index("ix_customers_next_follow_up_at")
        batch_op.create_index("ix_customers_last_follow_up", ["last_follow_up_at", "id"])
        batch_op.create_index("ix_customers_next_follow_up", ["next_follow_up_at", "id"])
    if op.get_bind().dialect.name != "postgresql":
        return
    # pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, table, column in TRIGRAM:
        op.create_index(
            name, table, [column], postgresql_using="gin", postgresql_ops={column: "gin_trgm_ops"}
        )
    for name, column in DESC_NULLS_LAST:
        op.create_index(
            name, "customers", [sa.text(f"{column} DESC NULLS LAST"), sa.text("id DESC")]
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, _column in DESC_NULLS_LAST:
            op.drop_index(name, table_name="customers")
        for name, table, _column in TRIGRAM:
            op.drop_index(name, table_name=table)
        # The extension stays: other objects may use it, and it holds no data.
    with op.batch_alter_table("customers") as batch_op:
        batch_op.drop_index("ix_customers_next_follow_up")
        batch_op.drop_index("ix_customers_last_follow_up")
        batch_op.create_index("ix_customers_next_follow_up_at", ["next_follow_up_at"])
        batch_op.create_index("ix_customers_last_follow_up_at", ["last_follow_up_at"])
