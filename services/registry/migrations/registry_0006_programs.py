"""Programs: groups of projects managed as one, possibly temporary (an end date), and membership.

Revision ID: registry_0006
Revises: registry_0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "registry_0006"
down_revision: str | None = "registry_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "registry"


def upgrade() -> None:
    op.create_table(
        "program",
        sa.Column("program_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("end_date", sa.Date),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=SCHEMA,
    )
    op.add_column(
        "project",
        sa.Column(
            "program_id",
            sa.Text,
            sa.ForeignKey(f"{SCHEMA}.program.program_id", name="project_program_id_fkey"),
        ),
        schema=SCHEMA,
    )
    op.create_index("ix_project_program_id", "project", ["program_id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("ix_project_program_id", "project", schema=SCHEMA)
    op.drop_column("project", "program_id", schema=SCHEMA)
    op.drop_table("program", schema=SCHEMA)
