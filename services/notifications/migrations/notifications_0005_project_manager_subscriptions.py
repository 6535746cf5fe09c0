"""Each project's manager has one system-owned e-mail subscription, kept by notifications.

Revision ID: notifications_0005
Revises: notifications_0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "notifications_0005"
down_revision: str | None = "notifications_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "notifications"


def upgrade() -> None:
    op.drop_constraint("subscription_managed_by", "subscription", schema=SCHEMA, type_="check")
    op.create_check_constraint(
        "subscription_managed_by",
        "subscription",
        "managed_by IN ('api', 'environment', 'project-manager')",
        schema=SCHEMA,
    )
    # One manager's subscription per project: what makes keeping it idempotent.
    op.create_index(
        "subscription_one_per_project_manager",
        "subscription",
        ["project_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where="managed_by = 'project-manager'",
    )


def downgrade() -> None:
    op.drop_index("subscription_one_per_project_manager", "subscription", schema=SCHEMA)
    op.execute(f"DELETE FROM {SCHEMA}.subscription WHERE managed_by = 'project-manager'")
    op.drop_constraint("subscription_managed_by", "subscription", schema=SCHEMA, type_="check")
    op.create_check_constraint(
        "subscription_managed_by",
        "subscription",
        "managed_by IN ('api', 'environment')",
        schema=SCHEMA,
    )
