"""Monitoring's health: reasons and hysteresis memory, staleness, history, allocations, thresholds.

Revision ID: monitoring_0002
Revises: monitoring_0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "monitoring_0002"
down_revision: str | None = "monitoring_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "monitoring"
PROJECT = "monitored_project"


def upgrade() -> None:
    for column in (
        sa.Column("business_unit", sa.Text),
        sa.Column("manager", sa.Text),
        sa.Column("currency", sa.Text),
        sa.Column("planned_value_curve", postgresql.JSONB),
        sa.Column("baseline_event_id", sa.Text),
        sa.Column("monitoring_state", sa.Text, nullable=False, server_default="active"),
        sa.Column("lifecycle", sa.Text),
        sa.Column("latest_percent_complete", sa.Float),
        sa.Column("latest_actual_cost", sa.Float),
        sa.Column("reported_health", sa.Text),
        sa.Column("milestones", postgresql.JSONB),
        sa.Column("status_expected_since", sa.Date),
        sa.Column("stale_since", sa.DateTime(timezone=True)),
        sa.Column("health_since", sa.DateTime(timezone=True)),
        sa.Column("reasons", postgresql.JSONB, nullable=False, server_default="[]"),
        sa.Column("index_levels", postgresql.JSONB, nullable=False, server_default="{}"),
        sa.Column("forecast_finish", sa.Date),
        sa.Column("assessed_at", sa.DateTime(timezone=True)),
    ):
        op.add_column(PROJECT, column, schema=SCHEMA)
    # Projects monitored before this revision: their staleness counts from their latest report,
    # or from the later of their start and today when they never reported.
    op.execute(
        f"UPDATE {SCHEMA}.{PROJECT} SET status_expected_since = "
        "COALESCE(latest_as_of, GREATEST(start_date, CURRENT_DATE))"
    )
    op.alter_column(PROJECT, "status_expected_since", nullable=False, schema=SCHEMA)
    op.create_check_constraint(
        "monitored_project_state",
        PROJECT,
        "monitoring_state IN ('active', 'on_hold', 'closed')",
        schema=SCHEMA,
    )
    op.create_check_constraint(
        "monitored_project_health", PROJECT, "health IN ('green', 'amber', 'red')", schema=SCHEMA
    )
    # The staleness clock's question: active, not yet stale, no report since the cut-off.
    op.create_index(
        "monitored_project_staleness",
        PROJECT,
        ["status_expected_since"],
        schema=SCHEMA,
        postgresql_where=sa.text("monitoring_state = 'active' AND stale_since IS NULL"),
    )
    op.create_index("monitored_project_health", PROJECT, ["health", "project_id"], schema=SCHEMA)

    op.create_table(
        "health_assessment",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("project_id", sa.Text, nullable=False),
        sa.Column(
            "assessed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("trigger", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text),
        sa.Column("as_of", sa.Date),
        sa.Column("applied", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("health", sa.Text, nullable=False),
        sa.Column("reasons", postgresql.JSONB, nullable=False, server_default="[]"),
        sa.Column("metrics", postgresql.JSONB, nullable=False, server_default="{}"),
        sa.Column("forecast_finish", sa.Date),
        sa.Column("alert", sa.Text),
        sa.CheckConstraint("health IN ('green', 'amber', 'red')", name="health_assessment_health"),
        schema=SCHEMA,
    )
    op.create_index(
        "health_assessment_by_project", "health_assessment", ["project_id", "id"], schema=SCHEMA
    )

    op.create_table(
        "resource_position",
        sa.Column("request_id", sa.Text, primary_key=True),
        sa.Column("project_id", sa.Text, nullable=False),
        sa.Column("skill", sa.Text),
        sa.Column("fte_requested", sa.Float, nullable=False),
        sa.Column("fte_granted", sa.Float, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("why", sa.Text, nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "resource_position_by_project", "resource_position", ["project_id"], schema=SCHEMA
    )

    op.create_table(
        "threshold_override",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("thresholds", postgresql.JSONB, nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint("id = 1", name="threshold_override_single_row"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("threshold_override", schema=SCHEMA)
    op.drop_table("resource_position", schema=SCHEMA)
    op.drop_table("health_assessment", schema=SCHEMA)
    op.drop_index("monitored_project_health", PROJECT, schema=SCHEMA)
    op.drop_index("monitored_project_staleness", PROJECT, schema=SCHEMA)
    op.drop_constraint("monitored_project_health", PROJECT, schema=SCHEMA)
    op.drop_constraint("monitored_project_state", PROJECT, schema=SCHEMA)
    for column in (
        "assessed_at",
        "forecast_finish",
        "index_levels",
        "reasons",
        "health_since",
        "stale_since",
        "status_expected_since",
        "milestones",
        "reported_health",
        "latest_actual_cost",
        "latest_percent_complete",
        "lifecycle",
        "monitoring_state",
        "baseline_event_id",
        "planned_value_curve",
        "currency",
        "manager",
        "business_unit",
    ):
        op.drop_column(PROJECT, column, schema=SCHEMA)
