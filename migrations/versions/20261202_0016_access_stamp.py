"""access stamp: one row whose version every committed change to what a principal is built from
bumps, by triggers, so a process can reuse the principals it built (app.access.PrincipalCache)

PostgreSQL: a deferred constraint trigger per row bumps the stamp once per transaction, at
commit, so the stamp's row lock is taken last and held for an instant (no lock-order deadlock with
the transaction's other rows), and a statement trigger covers TRUNCATE. SQLite (one writer at a
time): a row trigger per change.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 14:26:51.536135
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What app.access.load_principal reads.
ACCESS_TABLES = (
    "users",
    "user_roles",
    "roles",
    "role_field_permissions",
    "departments",
    "customer_team_members",
    "pools",
    "pool_members",
)

PG_BUMP = """
CREATE FUNCTION kehu_bump_access_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        IF current_setting('kehu.access_bumped', true) = 'on' THEN
            RETURN NULL;
        END IF;
        PERFORM set_config('kehu.access_bumped', 'on', true);
    END IF;
    UPDATE access_stamp SET version = version + 1 WHERE id = 1;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table('access_stamp',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_stamp'))
    )
    op.execute("INSERT INTO access_stamp (id, version) VALUES (1, 1)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_BUMP)
        for table in ACCESS_TABLES:
            op.execute(
                f"CREATE CONSTRAINT TRIGGER trg_{table}_access_stamp"
                f" AFTER INSERT OR UPDATE OR DELETE ON {table}"
                " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
                " EXECUTE FUNCTION kehu_bump_access_stamp()"
            )
            op.execute(
                f"CREATE TRIGGER trg_{table}_access_stamp_truncate AFTER TRUNCATE ON {table}"
                " FOR EACH STATEMENT EXECUTE FUNCTION kehu_bump_access_stamp()"
            )
    else:
        for table in ACCESS_TABLES:
            for event in ("insert", "update", "delete"):
                op.execute(
                    f"CREATE TRIGGER trg_{table}_access_stamp_{event}"
                    f" AFTER {event.upper()} ON {table} FOR EACH ROW"
                    " BEGIN UPDATE access_stamp SET version = version + 1 WHERE id = 1; END"
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ACCESS_TABLES:
            op.execute(f"DROP TRIGGER trg_{table}_access_stamp_truncate ON {table}")
            op.execute(f"DROP TRIGGER trg_{table}_access_stamp ON {table}")
        op.execute("DROP FUNCTION kehu_bump_access_stamp()")
    else:
        for table in ACCESS_TABLES:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER trg_{table}_access_stamp_{event}")
    op.drop_table('access_stamp')
