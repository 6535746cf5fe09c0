"""A subscription disabled because its receiver refused for good says why and since when.

Revision ID: notifications_0004
Revises: notifications_0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "notifications_0004"
down_revision: str | None = "notifications_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "notifications"


def upgrade() -> None:
    op.add_column("subscription", sa.Column("disabled_reason", sa.Text), schema=SCHEMA)
    op.add_column(
        "subscription", sa.Column("disabled_at", sa.DateTime(timezone=True)), schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_column("subscription", "disabled_at", schema=SCHEMA)
    op.drop_column("subscription", "disabled_reason", schema=SCHEMA)
