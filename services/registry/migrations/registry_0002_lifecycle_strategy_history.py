"""Project health and rank, project history, strategies received, resource shortfalls.

Revision ID: registry_0002
Revises: registry_0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "registry_0002"
down_revision: str | None = "registry_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "registry"


def upgrade() -> None:
    for column in (
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("health", sa.Text),
        sa.Column("health_reasons", postgresql.JSONB, nullable=False, server_default="[]"),
        sa.Column("health_as_of", sa.DateTime(timezone=True)),
        sa.Column("rank", sa.Integer),
        sa.Column("score", sa.Float),
        sa.Column("recommended_action", sa.Text),
        sa.Column("why", sa.Text),
        sa.Column("ranked_version", sa.Integer),
    ):
        op.add_column("project", column, schema=SCHEMA)
    # The list filters of the API.
    op.create_index("project_business_unit", "project", ["business_unit"], schema=SCHEMA)
    op.create_index("project_lifecycle", "project", ["lifecycle"], schema=SCHEMA)
    op.create_index("project_methodology", "project", ["methodology"], schema=SCHEMA)
    op.create_index("project_manager_folded", "project", [sa.text("lower(manager)")], schema=SCHEMA)

    op.create_table(
        "project_history",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("project_id", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("change", sa.Text, nullable=False),
        sa.Column("before", postgresql.JSONB),
        sa.Column("after", postgresql.JSONB),
        sa.Column("cause", sa.Text, nullable=False),
        sa.Column("note", sa.Text),
        schema=SCHEMA,
    )
    op.create_index(
        "project_history_by_project", "project_history", ["project_id", "id"], schema=SCHEMA
    )

    op.create_table(
        "strategy",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("strategy_version", sa.Integer, nullable=False),
        sa.Column("effective_date", sa.Date, nullable=False),
        sa.Column("objectives", postgresql.JSONB, nullable=False),
        sa.Column("directives", postgresql.JSONB, nullable=False, server_default="[]"),
        sa.Column("cause", sa.Text, nullable=False),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("directive_effects", postgresql.JSONB, nullable=False, server_default="[]"),
        sa.CheckConstraint("outcome IN ('applied', 'ignored')", name="strategy_outcome"),
        schema=SCHEMA,
    )
    # One applied strategy per version: the current one is the highest applied.
    op.create_index(
        "strategy_applied_version",
        "strategy",
        ["strategy_version"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("outcome = 'applied'"),
    )

    op.create_table(
        "resource_shortfall",
        sa.Column("request_id", sa.Text, primary_key=True),
        sa.Column("project_id", sa.Text, nullable=False, index=True),
        sa.Column("skill", sa.Text),
        sa.Column("fte_requested", sa.Float, nullable=False),
        sa.Column("fte_granted", sa.Float, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cause", sa.Text, nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("resource_shortfall", schema=SCHEMA)
    op.drop_index("strategy_applied_version", "strategy", schema=SCHEMA)
    op.drop_table("strategy", schema=SCHEMA)
    op.drop_index("project_history_by_project", "project_history", schema=SCHEMA)
    op.drop_table("project_history", schema=SCHEMA)
    for index in (
        "project_manager_folded",
        "project_methodology",
        "project_lifecycle",
        "project_business_unit",
    ):
        op.drop_index(index, "project", schema=SCHEMA)
    for column in (
        "ranked_version",
        "why",
        "recommended_action",
        "score",
        "rank",
        "health_as_of",
        "health_reasons",
        "health",
        "updated_at",
    ):
        op.drop_column("project", column, schema=SCHEMA)
