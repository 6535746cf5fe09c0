"""PMO experts and their interventions: specialties on resources, project health, interventions.

A resource with specialties is one of the PMO's own experts. Allocation keeps each project's
latest health (from monitoring's project-health-assessed) to propose interventions, and each
intervention from its proposal to its end.

Revision ID: allocation_0004
Revises: allocation_0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision: str = "allocation_0004"
down_revision: str | None = "allocation_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "allocation"


def upgrade() -> None:
    op.add_column(
        "resource",
        sa.Column("specialties", ARRAY(sa.Text), nullable=False, server_default="{}"),
        schema=SCHEMA,
    )
    op.create_table(
        "project_health",
        sa.Column("project_id", sa.Text, primary_key=True),
        sa.Column("health", sa.Text, nullable=False),
        sa.Column("reason_codes", ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("reasons", ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("at_risk_since", sa.DateTime(timezone=True)),
        sa.Column("assessed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("health IN ('green', 'amber', 'red')", name="project_health_level"),
        schema=SCHEMA,
    )
    op.create_table(
        "intervention",
        sa.Column("intervention_id", sa.Text, primary_key=True),
        sa.Column("project_id", sa.Text, nullable=False, index=True),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("specialty", sa.Text, nullable=False),
        sa.Column("reasons", ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("episode", sa.DateTime(timezone=True)),
        sa.Column("fte", sa.Float, nullable=False),
        sa.Column("starts", sa.Date, nullable=False),
        sa.Column("ends", sa.Date, nullable=False),
        sa.Column("expert_id", sa.Text),
        sa.Column("staffing", sa.Text, nullable=False, server_default=""),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("requested_by", sa.Text),
        sa.Column("decided_by", sa.Text),
        sa.Column("decision_note", sa.Text),
        sa.Column("request_id", sa.Text),
        sa.Column("end_reason", sa.Text),
        sa.Column(
            "proposed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("origin IN ('risk', 'advice')", name="intervention_origin"),
        sa.CheckConstraint(
            "state IN ('proposed', 'accepted', 'declined', 'ended')", name="intervention_state"
        ),
        sa.CheckConstraint("ends >= starts", name="intervention_period"),
        schema=SCHEMA,
    )
    # One open risk intervention per project: replicas proposing at once insert one.
    op.create_index(
        "intervention_one_open_risk",
        "intervention",
        ["project_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("origin = 'risk' AND state IN ('proposed', 'accepted')"),
    )


def downgrade() -> None:
    op.drop_index("intervention_one_open_risk", table_name="intervention", schema=SCHEMA)
    op.drop_table("intervention", schema=SCHEMA)
    op.drop_table("project_health", schema=SCHEMA)
    op.drop_column("resource", "specialties", schema=SCHEMA)
