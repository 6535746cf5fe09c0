"""Allocation's resource requests.

Revision ID: allocation_0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "allocation_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("allocation",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "resource_request",
        sa.Column("request_id", sa.Text, primary_key=True),
        sa.Column("project_id", sa.Text, nullable=False, index=True),
        sa.Column("skill", sa.Text, nullable=False),
        sa.Column("fte", sa.Float),
        sa.Column("hours", sa.Float),
        sa.Column("start", sa.Date, nullable=False),
        sa.Column("end", sa.Date, nullable=False),
        sa.Column("weeks", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("priority", sa.Text),
        sa.Column("named_resource", sa.Text),
        sa.Column("status", sa.Text, nullable=False, server_default="open"),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("event_id", sa.Text, nullable=False),
        schema="allocation",
    )


def downgrade() -> None:
    op.drop_table("resource_request", schema="allocation")
