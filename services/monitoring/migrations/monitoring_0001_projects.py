"""Monitoring's baselines and current health.

Revision ID: monitoring_0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "monitoring_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("monitoring",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "monitored_project",
        sa.Column("project_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("budget_at_completion", sa.Float, nullable=False),
        sa.Column("start_date", sa.Date, nullable=False),
        sa.Column("planned_finish_date", sa.Date, nullable=False),
        sa.Column("health", sa.Text, nullable=False, server_default="green"),
        sa.Column("at_risk_since", sa.DateTime(timezone=True)),
        sa.Column("latest_as_of", sa.Date),
        sa.Column("metrics", postgresql.JSONB, nullable=False, server_default="{}"),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema="monitoring",
    )


def downgrade() -> None:
    op.drop_table("monitored_project", schema="monitoring")
