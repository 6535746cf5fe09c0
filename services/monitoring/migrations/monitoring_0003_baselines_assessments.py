"""Monitoring's baselines (every approved one kept) and the as-of of the published assessment.

Revision ID: monitoring_0003
Revises: monitoring_0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "monitoring_0003"
down_revision: str | None = "monitoring_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "monitoring"
PROJECT = "monitored_project"


def upgrade() -> None:
    op.add_column(
        PROJECT,
        sa.Column("baseline_version", sa.Integer, nullable=False, server_default="1"),
        schema=SCHEMA,
    )
    op.add_column(PROJECT, sa.Column("rebaselined_at", sa.DateTime(timezone=True)), schema=SCHEMA)
    op.add_column(PROJECT, sa.Column("assessed_as_of", sa.Date), schema=SCHEMA)
    # Projects assessed before this revision: their assessment is of their latest report.
    op.execute(
        f"UPDATE {SCHEMA}.{PROJECT} SET assessed_as_of = latest_as_of WHERE assessed_at IS NOT NULL"
    )
    # Projects started before this revision and never moved by the registry since: active.
    op.execute(
        f"UPDATE {SCHEMA}.{PROJECT} SET lifecycle = 'active' "
        "WHERE lifecycle IS NULL AND monitoring_state = 'active'"
    )
    op.create_table(
        "baseline",
        sa.Column("project_id", sa.Text, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("budget_at_completion", sa.Float, nullable=False),
        sa.Column("start_date", sa.Date, nullable=False),
        sa.Column("planned_finish_date", sa.Date, nullable=False),
        sa.Column("planned_value_curve", postgresql.JSONB),
        sa.Column("approved_by", sa.Text),
        sa.Column("reason", sa.Text),
        sa.Column("approved_at", sa.DateTime(timezone=True)),
        sa.Column("event_id", sa.Text),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=SCHEMA,
    )
    # The baselines of projects monitored before this revision: each one's first, as taken.
    op.execute(
        f"INSERT INTO {SCHEMA}.baseline (project_id, version, budget_at_completion, start_date, "
        "planned_finish_date, planned_value_curve, event_id) "
        "SELECT project_id, 1, budget_at_completion, start_date, planned_finish_date, "
        f"planned_value_curve, baseline_event_id FROM {SCHEMA}.{PROJECT}"
    )


def downgrade() -> None:
    op.drop_table("baseline", schema=SCHEMA)
    for column in ("assessed_as_of", "rebaselined_at", "baseline_version"):
        op.drop_column(PROJECT, column, schema=SCHEMA)
