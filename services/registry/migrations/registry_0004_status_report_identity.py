"""A status report is identified by its CloudEvents `source` and `id` together.

Two enterprise systems may use the same event id (each counts its own); keyed on the id alone,
the second report was refused as a clash.

Revision ID: registry_0004
Revises: registry_0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "registry_0004"
down_revision: str | None = "registry_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "registry"


def upgrade() -> None:
    # Reports kept before this revision have no known source: '' stands for it.
    op.add_column(
        "status_report",
        sa.Column("source", sa.Text, nullable=False, server_default=""),
        schema=SCHEMA,
    )
    op.drop_constraint("status_report_pkey", "status_report", schema=SCHEMA, type_="primary")
    op.create_primary_key(
        "status_report_pkey", "status_report", ["source", "event_id"], schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_constraint("status_report_pkey", "status_report", schema=SCHEMA, type_="primary")
    op.create_primary_key("status_report_pkey", "status_report", ["event_id"], schema=SCHEMA)
    op.drop_column("status_report", "source", schema=SCHEMA)
