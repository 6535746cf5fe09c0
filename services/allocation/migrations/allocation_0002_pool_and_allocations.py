"""Allocation's resource pool, project standings, allocations, conflicts and re-resolution queue.

Revision ID: allocation_0002
Revises: allocation_0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "allocation_0002"
down_revision: str | None = "allocation_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "allocation"


def _now() -> sa.Column[datetime]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def upgrade() -> None:
    op.add_column("resource_request", sa.Column("fte_granted", sa.Float), schema=SCHEMA)
    op.add_column("resource_request", sa.Column("reason", sa.Text), schema=SCHEMA)
    op.add_column(
        "resource_request", sa.Column("decided_at", sa.DateTime(timezone=True)), schema=SCHEMA
    )
    op.create_table(
        "resource",
        sa.Column("resource_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("skills", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("capacity_fte", sa.Float, nullable=False),
        _now(),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint("capacity_fte >= 0", name="resource_capacity_not_negative"),
        schema=SCHEMA,
    )
    op.create_table(
        "capacity_change",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "resource_id",
            sa.Text,
            sa.ForeignKey(f"{SCHEMA}.resource.resource_id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("starts", sa.Date, nullable=False),
        sa.Column("ends", sa.Date),
        sa.Column("capacity_fte", sa.Float, nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.CheckConstraint("capacity_fte >= 0", name="capacity_change_not_negative"),
        sa.CheckConstraint("ends IS NULL OR ends >= starts", name="capacity_change_ordered"),
        schema=SCHEMA,
    )
    op.create_table(
        "project",
        sa.Column("project_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("manager", sa.Text),
        sa.Column("key_project", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("lifecycle", sa.Text),
        sa.Column("rank", sa.Integer),
        sa.Column("score", sa.Float),
        sa.Column("why", sa.Text),
        sa.Column("strategy_version", sa.Integer),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "portfolio_version",
        sa.Column("strategy_version", sa.Integer, primary_key=True),
        sa.Column("ranked", sa.Integer, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column(
            "applied_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "assignment",
        sa.Column(
            "request_id",
            sa.Text,
            sa.ForeignKey(f"{SCHEMA}.resource_request.request_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("resource_id", sa.Text, primary_key=True, index=True),
        sa.Column("week", sa.Text, primary_key=True),
        sa.Column("fte", sa.Float, nullable=False),
        sa.CheckConstraint("fte > 0", name="assignment_positive"),
        schema=SCHEMA,
    )
    op.create_index("assignment_week", "assignment", ["week"], schema=SCHEMA)
    op.create_table(
        "conflict",
        sa.Column("conflict_id", sa.Text, primary_key=True),
        sa.Column("contest_key", sa.Text, nullable=False, index=True),
        sa.Column("skill", sa.Text),
        sa.Column("resource_id", sa.Text),
        sa.Column("weeks", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("winners", postgresql.JSONB, nullable=False),
        sa.Column("losers", postgresql.JSONB, nullable=False),
        sa.Column("rationale", sa.Text, nullable=False),
        sa.Column("request_ids", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("cause", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False, server_default="open"),
        sa.Column("resolution", sa.Text),
        _now(),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        schema=SCHEMA,
    )
    op.create_index("conflict_state", "conflict", ["state"], schema=SCHEMA)
    op.create_table(
        "resolution_pending",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("weeks", postgresql.ARRAY(sa.Text)),
        sa.Column("cause", sa.Text, nullable=False),
        sa.Column("traceparent", sa.Text),
        _now(),
        schema=SCHEMA,
    )
    op.create_table(
        "resolution_run",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("causes", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("weeks", sa.Integer, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("greedy_value", sa.Float),
        sa.Column("mip_gap", sa.Float, nullable=False),
        sa.Column("moved", sa.Integer, nullable=False),
        sa.Column("decided", sa.Integer, nullable=False),
        sa.Column("changed", sa.Integer, nullable=False),
        sa.Column("conflicts", sa.Integer, nullable=False),
        sa.Column(
            "ran_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=SCHEMA,
    )
    # Requests recorded before this revision were never decided: decide them at the next start.
    op.execute(
        f"INSERT INTO {SCHEMA}.resolution_pending (weeks, cause) "
        f"SELECT NULL, 'requests received before allocation decisions existed' "
        f"WHERE EXISTS (SELECT 1 FROM {SCHEMA}.resource_request)"
    )


def downgrade() -> None:
    for table in (
        "resolution_run",
        "resolution_pending",
        "conflict",
        "assignment",
        "portfolio_version",
        "project",
        "capacity_change",
        "resource",
    ):
        op.drop_table(table, schema=SCHEMA)
    for column in ("decided_at", "reason", "fte_granted"):
        op.drop_column("resource_request", column, schema=SCHEMA)
