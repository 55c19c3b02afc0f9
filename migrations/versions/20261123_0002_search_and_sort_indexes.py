"""search and sort indexes: follow-up keyset indexes; bigram and trigram search on PostgreSQL

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

TRIGRAM = (("ix_customer_phones_number_trgm", "customer_phones", "number"),)
BIGRAM = (
    ("ix_customers_name_bigrams", "customers", "name"),
    ("ix_contacts_name_bigrams", "contacts", "name"),
)
# Overlapping character pairs of a lower-cased text, space-separated: '青信智能' -> '青信 信智 智能'.
# Indexed as a 'simple' tsvector, any substring of two or more characters (Chinese included,
# where trigram search needs three) is found through the GIN index: all its pairs are present.
BIGRAMS_FUNCTION = """
CREATE OR REPLACE FUNCTION kehu_bigrams(t text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT coalesce(string_agg(substr(lower(t), i, 2), ' ' ORDER BY i), '')
  FROM generate_series(1, char_length(t) - 1) AS i
$$
"""
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
    op.execute(BIGRAMS_FUNCTION)
    for name, table, column in BIGRAM:
        op.create_index(
            name,
            table,
            [sa.text(f"to_tsvector('simple'::regconfig, kehu_bigrams({column}::text))")],
            postgresql_using="gin",
        )
    for name, column in DESC_NULLS_LAST:
        op.create_index(
            name, "customers", [sa.text(f"{column} DESC NULLS LAST"), sa.text("id DESC")]
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, _column in DESC_NULLS_LAST:
            op.drop_index(name, table_name="customers")
        for name, table, _column in (*TRIGRAM, *BIGRAM):
            op.drop_index(name, table_name=table)
        op.execute("DROP FUNCTION IF EXISTS kehu_bigrams(text)")
        # The extension stays: other objects may use it, and it holds no data.
    with op.batch_alter_table("customers") as batch_op:
        batch_op.drop_index("ix_customers_next_follow_up")
        batch_op.drop_index("ix_customers_last_follow_up")
        batch_op.create_index("ix_customers_next_follow_up_at", ["next_follow_up_at"])
        batch_op.create_index("ix_customers_last_follow_up_at", ["last_follow_up_at"])
