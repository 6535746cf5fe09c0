"""Monitoring's whole assessment on each project, and its approved baselines (re-baselining).

Revision ID: registry_0003
Revises: registry_0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "registry_0003"
down_revision: str | None = "registry_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "registry"
PROJECT = "project"


def upgrade() -> None:
    for column in (
        sa.Column("health_details", postgresql.JSONB, nullable=False, server_default="[]"),
        sa.Column("health_metrics", postgresql.JSONB, nullable=False, server_default="{}"),
        sa.Column("health_status_as_of", sa.Date),
        sa.Column("forecast_finish", sa.Date),
        sa.Column("at_risk_since", sa.DateTime(timezone=True)),
        sa.Column("planned_value_curve", postgresql.JSONB),
        sa.Column("baseline_version", sa.Integer),
        sa.Column("rebaselined_at", sa.DateTime(timezone=True)),
    ):
        op.add_column(PROJECT, column, schema=SCHEMA)
    op.create_table(
        "baseline",
        sa.Column("project_id", sa.Text, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("budget", sa.Float, nullable=False),
        sa.Column("start_date", sa.Date, nullable=False),
        sa.Column("planned_finish_date", sa.Date, nullable=False),
        sa.Column("planned_value_curve", postgresql.JSONB),
        sa.Column("approved_by", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cause", sa.Text, nullable=False),
        schema=SCHEMA,
    )
    # Projects started before this revision: their charter's budget and dates are baseline 1
    # (a project still in the pipeline has none until the enterprise starts it).
    op.execute(
        f"INSERT INTO {SCHEMA}.baseline (project_id, version, budget, start_date, "
        "planned_finish_date, approved_by, reason, approved_at, cause) "
        "SELECT project_id, 1, budget, start_date, planned_finish_date, registered_by, "
        "'the baseline the project started with', registered_at, registered_by "
        f"FROM {SCHEMA}.{PROJECT} WHERE lifecycle NOT IN ('proposed', 'approved')"
    )
    op.execute(
        f"UPDATE {SCHEMA}.{PROJECT} SET baseline_version = 1 "
        "WHERE lifecycle NOT IN ('proposed', 'approved')"
    )


def downgrade() -> None:
    op.drop_table("baseline", schema=SCHEMA)
    for column in (
        "rebaselined_at",
        "baseline_version",
        "planned_value_curve",
        "at_risk_since",
        "forecast_finish",
        "health_status_as_of",
        "health_metrics",
        "health_details",
    ):
        op.drop_column(PROJECT, column, schema=SCHEMA)
