"""indexes on a rep's customers by the month and day of birth and of signing (PostgreSQL), for
the birthdays and anniversaries of the rep's day (services.today): a rep's few customers near
the date are found in the index instead of among all the rep's customers

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 15:50:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# app.models.sql.month_day_sql of each column, as queries spell it.
MONTH_DAYS = {
    "birth_date": "(CAST(EXTRACT(MONTH FROM birth_date) * 100 + EXTRACT(DAY FROM birth_date)"
    " AS INTEGER))",
    "signed_at": "(CAST(EXTRACT(MONTH FROM (signed_at AT TIME ZONE 'UTC')) * 100"
    " + EXTRACT(DAY FROM (signed_at AT TIME ZONE 'UTC')) AS INTEGER))",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for column, month_day in MONTH_DAYS.items():
        op.execute(
            f"CREATE INDEX ix_customers_owner_{column}_month_day ON customers"
            f" (owner_id, {month_day}) WHERE deleted_at IS NULL"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for column in MONTH_DAYS:
        op.execute(f"DROP INDEX ix_customers_owner_{column}_month_day")
