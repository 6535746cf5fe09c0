"""Capacity changes get a kind (absence or contract); conflicts are named as their events are.

A conflict is published as `resource-conflict-resolved`, so while its resolution stands it is
listed as `resolved` (it was `open`); once the shortage ends or a newer resolution supersedes it,
it is `closed` (it was `resolved`), with `closed_at` and `closed_reason` (were `resolved_at` and
`resolution`). `resolved_at` now says when its resolution was (last) published.

Revision ID: allocation_0003
Revises: allocation_0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "allocation_0003"
down_revision: str | None = "allocation_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "allocation"


def upgrade() -> None:
    op.add_column(
        "capacity_change",
        sa.Column("kind", sa.Text, nullable=False, server_default="contract"),
        schema=SCHEMA,
    )
    # Stored changes had no kind: a bounded one (holiday, leave) is an absence.
    op.execute(f"UPDATE {SCHEMA}.capacity_change SET kind = 'absence' WHERE ends IS NOT NULL")
    op.create_check_constraint(
        "capacity_change_kind", "capacity_change", "kind IN ('absence', 'contract')", schema=SCHEMA
    )
    op.alter_column("conflict", "resolved_at", new_column_name="closed_at", schema=SCHEMA)
    op.alter_column("conflict", "resolution", new_column_name="closed_reason", schema=SCHEMA)
    op.add_column("conflict", sa.Column("resolved_at", sa.DateTime(timezone=True)), schema=SCHEMA)
    op.execute(
        f"UPDATE {SCHEMA}.conflict SET resolved_at = created_at, "
        "state = CASE state WHEN 'open' THEN 'resolved' ELSE 'closed' END"
    )
    op.alter_column(
        "conflict", "resolved_at", nullable=False, server_default=sa.func.now(), schema=SCHEMA
    )
    op.alter_column("conflict", "state", server_default="resolved", schema=SCHEMA)
    op.create_check_constraint(
        "conflict_state_known", "conflict", "state IN ('resolved', 'closed')", schema=SCHEMA
    )
    # Requests are now planned on their working days: re-plan every open week at the next start
    # (a week holding only a weekend of a request loses what it held).
    op.execute(
        f"INSERT INTO {SCHEMA}.resolution_pending (weeks, cause) "
        "SELECT NULL, 'demand and capacity counted on working days, absences on top of contracts' "
        f"WHERE EXISTS (SELECT 1 FROM {SCHEMA}.resource_request)"
    )
    # `GET /conflicts?project_id=` filters on the projects of its winners and losers.
    op.create_index(
        "conflict_decisions",
        "conflict",
        ["winners", "losers"],
        schema=SCHEMA,
        postgresql_using="gin",
    )


def downgrade() -> None:
    op.drop_index("conflict_decisions", "conflict", schema=SCHEMA)
    op.drop_constraint("conflict_state_known", "conflict", schema=SCHEMA)
    op.execute(
        f"UPDATE {SCHEMA}.conflict SET "
        "state = CASE state WHEN 'resolved' THEN 'open' ELSE 'resolved' END"
    )
    op.alter_column("conflict", "state", server_default="open", schema=SCHEMA)
    op.drop_column("conflict", "resolved_at", schema=SCHEMA)
    op.alter_column("conflict", "closed_reason", new_column_name="resolution", schema=SCHEMA)
    op.alter_column("conflict", "closed_at", new_column_name="resolved_at", schema=SCHEMA)
    op.drop_constraint("capacity_change_kind", "capacity_change", schema=SCHEMA)
    op.drop_column("capacity_change", "kind", schema=SCHEMA)
