"""The registry's projects and their status reports.

Revision ID: registry_0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "registry_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("registry",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "project",
        sa.Column("project_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("business_unit", sa.Text, nullable=False),
        sa.Column("manager", sa.Text, nullable=False),
        sa.Column("sponsor", sa.Text),
        sa.Column("start_date", sa.Date, nullable=False),
        sa.Column("planned_finish_date", sa.Date, nullable=False),
        sa.Column("budget", sa.Float, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("objectives", postgresql.JSONB, nullable=False, server_default="[]"),
        sa.Column("key_project", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("methodology", sa.Text),
        sa.Column("lifecycle", sa.Text, nullable=False),
        sa.Column("percent_complete", sa.Float),
        sa.Column("status_as_of", sa.Date),
        sa.Column(
            "registered_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
        sa.Column("registered_by", sa.Text, nullable=False),
        schema="registry",
    )
    op.create_table(
        "status_report",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("project_id", sa.Text, nullable=False, index=True),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("percent_complete", sa.Float, nullable=False),
        sa.Column("actual_cost", sa.Float, nullable=False),
        sa.Column("lifecycle", sa.Text),
        sa.Column("reported_health", sa.Text),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema="registry",
    )


def downgrade() -> None:
    op.drop_table("status_report", schema="registry")
    op.drop_table("project", schema="registry")
